// js-echo: a csmp step plugin in JavaScript that returns its input.
//
// Built with componentize-js against sdk/wit/plugin.wit (see sdk/examples/README.md):
//
//   componentize-js sdk/examples/javascript/echo.js --wit sdk/wit --world-name plugin \
//     --disable http fetch-event -o js-echo.wasm

import { write } from 'csmp:plugin/log@1.0.0';

const DESCRIPTOR = {
  name: 'js-echo',
  version: '0.1.0',
  description: 'Returns its input object (a JavaScript example)',
  input_schema: { type: 'object' },
  output_schema: { type: 'object' },
  capabilities: { http_hosts: [], secrets: [] },
};

export function describe() {
  return JSON.stringify(DESCRIPTOR);
}

export function run(input, ctx) {
  const value = JSON.parse(input);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    // Permanent: the same input fails the same way on every retry.
    throw { tag: 'permanent', val: 'the input must be a JSON object' };
  }
  write('info', `echoing ${Object.keys(value).length} keys`);
  return JSON.stringify(value);
}
