// js-fetch: a csmp step plugin in JavaScript that GETs a URL through the host, with a bearer
// token from a granted secret, and returns the status and the (JSON or text) body.
//
// The host sends the request only to hosts the operator granted this plugin
// (`plugins.js-fetch.http_hosts`) and answers `get` only for granted secret names
// (`plugins.js-fetch.secrets`): anything else fails the attempt as denied. `fetch()` is not
// available (it would be wasi:http, which the sandbox refuses): use `send`.

import { send } from 'csmp:plugin/http@1.0.0';
import { write } from 'csmp:plugin/log@1.0.0';
import { get } from 'csmp:plugin/secrets@1.0.0';

const DESCRIPTOR = {
  name: 'js-fetch',
  version: '0.1.0',
  description: 'GETs a URL with a bearer token from the secret fetch_token (a JavaScript example)',
  input_schema: {
    type: 'object',
    required: ['url'],
    additionalProperties: false,
    properties: { url: { type: 'string', pattern: '^https?://' } },
  },
  output_schema: {
    type: 'object',
    required: ['status', 'body'],
    properties: { status: { type: 'integer' }, body: {} },
  },
  capabilities: { http_hosts: [], secrets: ['fetch_token'] },
};

export function describe() {
  return JSON.stringify(DESCRIPTOR);
}

export function run(input, ctx) {
  const { url } = JSON.parse(input);
  const token = get('fetch_token');
  if (token === undefined) {
    throw { tag: 'permanent', val: 'the secret fetch_token is not set; set it for the run' };
  }
  let response;
  try {
    response = send({
      method: 'GET',
      url,
      headers: [
        ['authorization', `Bearer ${token}`],
        ['idempotency-key', ctx.idempotencyKey],
      ],
      body: undefined,
      timeoutMs: undefined,
    });
  } catch (e) {
    // Timeouts and transport errors may pass: let the step's retry policy decide.
    const why = e.payload ? `${e.payload.tag}: ${e.payload.val}` : String(e);
    throw { tag: 'retryable', val: `GET ${url} failed: ${why}` };
  }
  write('info', `GET ${url} -> ${response.status}`);
  if (response.status >= 500 || response.status === 408 || response.status === 429) {
    throw { tag: 'retryable', val: `GET ${url} answered ${response.status}` };
  }
  if (response.status >= 400) {
    throw { tag: 'permanent', val: `GET ${url} answered ${response.status}` };
  }
  const text = new TextDecoder().decode(response.body);
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return JSON.stringify({ status: response.status, body });
}
