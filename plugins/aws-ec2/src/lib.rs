//! The `aws-ec2` built-in plugin: Amazon EC2 instances over EC2's own Query API — launch,
//! describe (optionally until they reach a state), terminate, health checks, and a per-tenant
//! quota check — on AWS or any EC2-compatible endpoint (moto, LocalStack, other clouds).
//!
//! Every instance it launches is tagged with the tenant (`csmp:tenant`), the request
//! (`csmp:request`) and run (`csmp:run`) it belongs to, and the step's idempotency key
//! (`csmp:idempotency-key`). A launch is safe to retry: the idempotency key is sent as
//! `ClientToken` (AWS then never launches twice for one token), and before launching the
//! plugin looks for live instances already carrying the key, so a retry also launches nothing
//! twice on endpoints that ignore `ClientToken`.
//!
//! Credentials, region and endpoint: see `csmp_sdk::aws` (secrets `aws_*`). Knows nothing
//! about the host beyond the SDK.

pub mod instances;

use std::collections::BTreeMap;

use csmp_sdk::aws::sigv4::sha256_hex;
use csmp_sdk::aws::{self, Client, Params, Target};
use csmp_sdk::schemars::JsonSchema;
use csmp_sdk::serde::{Deserialize, Serialize};
use csmp_sdk::{Context, PluginError};

pub use instances::{Instance, StateChange, Status};

/// Tag keys the plugin writes on what it launches.
pub const TAG_TENANT: &str = "csmp:tenant";
/// See [`TAG_TENANT`].
pub const TAG_REQUEST: &str = "csmp:request";
/// See [`TAG_TENANT`].
pub const TAG_RUN: &str = "csmp:run";
/// See [`TAG_TENANT`].
pub const TAG_IDEMPOTENCY_KEY: &str = "csmp:idempotency-key";

/// States of instances that still exist (count against quotas, can be reused).
const LIVE_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];

/// Pages of a describe call the plugin follows before giving up.
const MAX_PAGES: usize = 20;

/// The step's `with:`: one action.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", tag = "action", rename_all = "snake_case")]
#[schemars(crate = "csmp_sdk::schemars", transform = csmp_sdk::dispatch_on_action)]
pub enum Input {
    /// Launch instances (`RunInstances`), or return the ones an earlier attempt of this step
    /// launched.
    RunInstances(RunInstances),
    /// Describe instances by id or by tag; with `until_state`, fail (retryably) until every
    /// one has reached that state.
    DescribeInstances(DescribeInstances),
    /// Terminate instances; ids that no longer exist are not an error.
    TerminateInstances(TerminateInstances),
    /// The instance and system health checks (`DescribeInstanceStatus`).
    InstanceStatus(InstanceStatus),
    /// Count the tenant's live instances and fail (permanently) if `requested` more would
    /// exceed `limit`.
    CheckQuota(CheckQuota),
}

/// `run_instances`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct RunInstances {
    /// The machine image (`ami-…`).
    pub image_id: String,
    /// `t3.micro`, `m6i.large`, ...
    pub instance_type: String,
    /// How many to launch (all or none); 1 when omitted.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 100))]
    pub count: u32,
    /// The tenant the instances belong to (tag `csmp:tenant`).
    pub tenant: String,
    /// The request they were ordered by (tag `csmp:request`; omitted when empty).
    #[serde(default)]
    pub request: Option<String>,
    /// The run that launched them (tag `csmp:run`; omitted when empty).
    #[serde(default)]
    pub run: Option<String>,
    /// More tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The subnet to launch in; the default VPC's when omitted.
    #[serde(default)]
    pub subnet_id: Option<String>,
    /// Security groups (ids).
    #[serde(default)]
    pub security_group_ids: Vec<String>,
    /// An EC2 key pair for SSH.
    #[serde(default)]
    pub key_name: Option<String>,
    /// Where and as whom to call EC2.
    #[serde(default)]
    pub aws: Target,
}

fn one() -> u32 {
    1
}

/// `describe_instances`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct DescribeInstances {
    /// Instance ids; every instance (that matches `tags`) when empty.
    #[serde(default)]
    pub instance_ids: Vec<String>,
    /// Only instances carrying all these tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Only instances in these states (`pending`, `running`, ...).
    #[serde(default)]
    pub states: Vec<String>,
    /// Fail with a retryable error until every instance is in this state (so the step's
    /// `retry:` polls with durable waits); fail permanently if one can no longer get there.
    #[serde(default)]
    pub until_state: Option<String>,
    /// Where and as whom to call EC2.
    #[serde(default)]
    pub aws: Target,
}

/// `terminate_instances`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct TerminateInstances {
    /// The instances to terminate.
    #[schemars(length(min = 1))]
    pub instance_ids: Vec<String>,
    /// Where and as whom to call EC2.
    #[serde(default)]
    pub aws: Target,
}

/// `instance_status`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct InstanceStatus {
    /// The instances.
    #[schemars(length(min = 1))]
    pub instance_ids: Vec<String>,
    /// Fail with a retryable error until both checks of every instance are `ok`.
    #[serde(default)]
    pub until_ok: bool,
    /// Where and as whom to call EC2.
    #[serde(default)]
    pub aws: Target,
}

/// `check_quota`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct CheckQuota {
    /// Whose instances to count (tag `csmp:tenant`).
    pub tenant: String,
    /// How many more the run wants.
    pub requested: u32,
    /// The most live instances the tenant may have.
    pub limit: u32,
    /// Where and as whom to call EC2.
    #[serde(default)]
    pub aws: Target,
}

/// The step's output: which shape depends on the action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", untagged)]
#[schemars(crate = "csmp_sdk::schemars")]
pub enum Output {
    /// `run_instances`.
    Launched(Launched),
    /// `describe_instances`.
    Described(Described),
    /// `terminate_instances`.
    Terminated(Terminated),
    /// `instance_status`.
    Statuses(Statuses),
    /// `check_quota`.
    Quota(Quota),
}

/// What `run_instances` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde")]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct Launched {
    /// The first instance's id (the only one when `count` is 1): what a `compensate:`
    /// terminates.
    pub instance_id: String,
    /// Every instance's id.
    pub instance_ids: Vec<String>,
    /// The instances.
    pub instances: Vec<Instance>,
    /// True when an earlier attempt of this step had launched them and nothing new was.
    pub reused: bool,
}

/// What `describe_instances` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde")]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct Described {
    /// How many matched.
    pub count: usize,
    /// Their ids.
    pub instance_ids: Vec<String>,
    /// The instances.
    pub instances: Vec<Instance>,
}

/// What `terminate_instances` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde")]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct Terminated {
    /// The state changes EC2 reported.
    pub terminated: Vec<StateChange>,
    /// Ids EC2 did not know (already gone).
    pub missing: Vec<String>,
}

/// What `instance_status` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde")]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct Statuses {
    /// One per instance.
    pub statuses: Vec<Status>,
    /// Whether every check of every instance is `ok`.
    pub all_ok: bool,
}

/// What `check_quota` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde")]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct Quota {
    /// The tenant.
    pub tenant: String,
    /// Its live instances now.
    pub existing: u32,
    /// How many more were asked for.
    pub requested: u32,
    /// Its limit.
    pub limit: u32,
    /// How many more it may have after this request.
    pub remaining: u32,
}

/// Runs one action.
pub fn run(ctx: &Context, input: Input) -> Result<Output, PluginError> {
    match input {
        Input::RunInstances(i) => run_instances(ctx, i).map(Output::Launched),
        Input::DescribeInstances(i) => describe_instances(ctx, i).map(Output::Described),
        Input::TerminateInstances(i) => terminate(ctx, i).map(Output::Terminated),
        Input::InstanceStatus(i) => instance_status(ctx, i).map(Output::Statuses),
        Input::CheckQuota(i) => check_quota(ctx, i).map(Output::Quota),
    }
}

/// EC2's `ClientToken` is at most 64 ASCII characters: the key itself when it fits, else
/// its SHA-256.
pub fn client_token(idempotency_key: &str) -> String {
    if idempotency_key.len() <= 64 && idempotency_key.is_ascii() {
        idempotency_key.to_owned()
    } else {
        sha256_hex(idempotency_key.as_bytes())
    }
}

fn run_instances(ctx: &Context, input: RunInstances) -> Result<Launched, PluginError> {
    let client = Client::connect(ctx, aws::EC2, &input.aws)?;
    let key = ctx.idempotency_key().to_owned();

    let earlier = find(
        &client,
        &[],
        &BTreeMap::from([(TAG_IDEMPOTENCY_KEY.to_owned(), key.clone())]),
        &LIVE_STATES.map(String::from),
    )?;
    if !earlier.is_empty() {
        ctx.info(format!(
            "an earlier attempt of this step launched {}; launching nothing new",
            ids(&earlier).join(", ")
        ));
        return launched(earlier, true);
    }

    let mut tags = input.tags.clone();
    tags.insert(TAG_TENANT.into(), input.tenant.clone());
    for (tag, value) in [(TAG_REQUEST, &input.request), (TAG_RUN, &input.run)] {
        if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
            tags.insert(tag.into(), v.clone());
        }
    }
    tags.insert(TAG_IDEMPOTENCY_KEY.into(), key.clone());

    let mut params = Params::new()
        .set("ImageId", &input.image_id)
        .set("InstanceType", &input.instance_type)
        .set("MinCount", input.count)
        .set("MaxCount", input.count)
        .set("ClientToken", client_token(&key))
        .set_opt("SubnetId", input.subnet_id.as_ref())
        .set_opt("KeyName", input.key_name.as_ref())
        .list("SecurityGroupId", &input.security_group_ids);
    for resource in ["instance", "volume"] {
        params = tag_specification(params, resource, &tags);
    }
    let answer = client.query("RunInstances", &params)?;
    let instances = instances::launched(&answer.text)?;
    ctx.info(format!(
        "launched {} ({} × {}) for {}",
        ids(&instances).join(", "),
        input.count,
        input.instance_type,
        input.tenant
    ));
    launched(instances, false)
}

fn tag_specification(params: Params, resource: &str, tags: &BTreeMap<String, String>) -> Params {
    let n = if resource == "instance" { 1 } else { 2 };
    let mut params = params.set(format!("TagSpecification.{n}.ResourceType"), resource);
    for (i, (k, v)) in tags.iter().enumerate() {
        params = params
            .set(format!("TagSpecification.{n}.Tag.{}.Key", i + 1), k)
            .set(format!("TagSpecification.{n}.Tag.{}.Value", i + 1), v);
    }
    params
}

fn launched(instances: Vec<Instance>, reused: bool) -> Result<Launched, PluginError> {
    let instance_ids = ids(&instances);
    let instance_id = instance_ids.first().cloned().ok_or_else(|| {
        PluginError::retryable("ec2 RunInstances answered without any instance; trying again")
    })?;
    Ok(Launched {
        instance_id,
        instance_ids,
        instances,
        reused,
    })
}

fn describe_instances(ctx: &Context, input: DescribeInstances) -> Result<Described, PluginError> {
    let client = Client::connect(ctx, aws::EC2, &input.aws)?;
    let instances = find(&client, &input.instance_ids, &input.tags, &input.states)?;
    if let Some(wanted) = &input.until_state {
        wait_condition(&instances, wanted, &input.instance_ids)?;
    }
    Ok(Described {
        count: instances.len(),
        instance_ids: ids(&instances),
        instances,
    })
}

/// `Ok` once every instance is in `wanted`; retryable while some are on their way, permanent
/// when one has left the road (terminated while we wait for `running`).
fn wait_condition(
    instances: &[Instance],
    wanted: &str,
    asked: &[String],
) -> Result<(), PluginError> {
    if !asked.is_empty() && instances.len() < asked.len() {
        let missing: Vec<&str> = asked
            .iter()
            .filter(|id| !instances.iter().any(|i| &i.id == *id))
            .map(String::as_str)
            .collect();
        return Err(PluginError::retryable(format!(
            "ec2 does not list {} yet; waiting for it to be {wanted}",
            missing.join(", ")
        )));
    }
    let gone_for: &[&str] = match wanted {
        "running" | "pending" | "stopping" | "stopped" => &["shutting-down", "terminated"],
        _ => &[],
    };
    if let Some(lost) = instances
        .iter()
        .find(|i| gone_for.contains(&i.state.as_str()))
    {
        return Err(PluginError::permanent(format!(
            "instance {} is {} and will never be {wanted}",
            lost.id, lost.state
        )));
    }
    let waiting: Vec<String> = instances
        .iter()
        .filter(|i| i.state != wanted)
        .map(|i| format!("{} is {}", i.id, i.state))
        .collect();
    if waiting.is_empty() {
        Ok(())
    } else {
        Err(PluginError::retryable(format!(
            "{} of {} instances are not {wanted} yet ({}); the step's retry policy polls again",
            waiting.len(),
            instances.len(),
            waiting.join(", ")
        )))
    }
}

fn terminate(ctx: &Context, input: TerminateInstances) -> Result<Terminated, PluginError> {
    let client = Client::connect(ctx, aws::EC2, &input.aws)?;
    // Terminating one unknown id fails the whole call, so drop the unknown ones first.
    let known = find(&client, &input.instance_ids, &BTreeMap::new(), &[])?;
    let missing: Vec<String> = input
        .instance_ids
        .iter()
        .filter(|id| !known.iter().any(|i| &i.id == *id))
        .cloned()
        .collect();
    if !missing.is_empty() {
        ctx.info(format!("already gone: {}", missing.join(", ")));
    }
    if known.is_empty() {
        return Ok(Terminated {
            terminated: Vec::new(),
            missing,
        });
    }
    let params = Params::new().list("InstanceId", ids(&known));
    let answer = client.query("TerminateInstances", &params)?;
    let terminated = instances::state_changes(&answer.text)?;
    ctx.info(format!("terminating {}", ids(&known).join(", ")));
    Ok(Terminated {
        terminated,
        missing,
    })
}

fn instance_status(ctx: &Context, input: InstanceStatus) -> Result<Statuses, PluginError> {
    let client = Client::connect(ctx, aws::EC2, &input.aws)?;
    let mut statuses = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = Params::new()
            .set("IncludeAllInstances", true)
            .list("InstanceId", &input.instance_ids)
            .set_opt("NextToken", token.as_ref());
        let answer = client.query("DescribeInstanceStatus", &params)?;
        let (page, next) = instances::statuses(&answer.text)?;
        statuses.extend(page);
        token = next;
        if token.is_none() {
            break;
        }
    }
    let all_ok = !statuses.is_empty()
        && statuses
            .iter()
            .all(|s| s.instance_status == "ok" && s.system_status == "ok");
    if input.until_ok && !all_ok {
        let pending: Vec<String> = statuses
            .iter()
            .filter(|s| s.instance_status != "ok" || s.system_status != "ok")
            .map(|s| {
                format!(
                    "{}: instance {}, system {}",
                    s.id, s.instance_status, s.system_status
                )
            })
            .collect();
        return Err(PluginError::retryable(format!(
            "health checks not ok yet ({}); the step's retry policy polls again",
            if pending.is_empty() {
                "no status reported".into()
            } else {
                pending.join("; ")
            }
        )));
    }
    Ok(Statuses { statuses, all_ok })
}

fn check_quota(ctx: &Context, input: CheckQuota) -> Result<Quota, PluginError> {
    let client = Client::connect(ctx, aws::EC2, &input.aws)?;
    let live = find(
        &client,
        &[],
        &BTreeMap::from([(TAG_TENANT.to_owned(), input.tenant.clone())]),
        &LIVE_STATES.map(String::from),
    )?;
    let existing = u32::try_from(live.len()).unwrap_or(u32::MAX);
    let after = existing.saturating_add(input.requested);
    if after > input.limit {
        return Err(PluginError::permanent(format!(
            "tenant {} has {existing} instances; {} more would exceed its quota of {}; \
             terminate some or ask an operator to raise the quota",
            input.tenant, input.requested, input.limit
        )));
    }
    ctx.info(format!(
        "tenant {} has {existing} of {} instances; {} more fit",
        input.tenant, input.limit, input.requested
    ));
    Ok(Quota {
        tenant: input.tenant,
        existing,
        requested: input.requested,
        limit: input.limit,
        remaining: input.limit - after,
    })
}

/// `DescribeInstances` by ids, tags and states, following `nextToken`. Ids EC2 does not
/// know are left out (asking for one fails the whole call, so the ids are then asked one by
/// one).
fn find(
    client: &Client<'_>,
    instance_ids: &[String],
    tags: &BTreeMap<String, String>,
    states: &[String],
) -> Result<Vec<Instance>, PluginError> {
    match describe_pages(client, instance_ids, tags, states) {
        Err(e) if !instance_ids.is_empty() && unknown_id(&e) => {
            let mut found = Vec::new();
            for id in instance_ids {
                match describe_pages(client, std::slice::from_ref(id), tags, states) {
                    Ok(one) => found.extend(one),
                    Err(e) if unknown_id(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(found)
        }
        other => other,
    }
}

/// `InvalidInstanceID.NotFound` or `InvalidInstanceID.Malformed`.
fn unknown_id(e: &PluginError) -> bool {
    !e.is_retryable() && e.message().contains(": InvalidInstanceID.")
}

fn describe_pages(
    client: &Client<'_>,
    instance_ids: &[String],
    tags: &BTreeMap<String, String>,
    states: &[String],
) -> Result<Vec<Instance>, PluginError> {
    let mut filters: Vec<Vec<(String, String)>> = tags
        .iter()
        .map(|(k, v)| {
            vec![
                ("Name".into(), format!("tag:{k}")),
                ("Value.1".into(), v.clone()),
            ]
        })
        .collect();
    if !states.is_empty() {
        let mut filter = vec![("Name".to_string(), "instance-state-name".to_string())];
        for (i, s) in states.iter().enumerate() {
            filter.push((format!("Value.{}", i + 1), s.clone()));
        }
        filters.push(filter);
    }
    let mut found = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = Params::new()
            .list("InstanceId", instance_ids)
            .structs("Filter", filters.clone())
            .set_opt("NextToken", token.as_ref());
        let answer = client.query("DescribeInstances", &params)?;
        let (page, next) = instances::described(&answer.text)?;
        found.extend(page);
        token = next;
        if token.is_none() {
            break;
        }
    }
    Ok(found)
}

fn ids(instances: &[Instance]) -> Vec<String> {
    instances.iter().map(|i| i.id.clone()).collect()
}

csmp_sdk::plugin! {
    name: "aws-ec2",
    version: env!("CARGO_PKG_VERSION"),
    description: "Amazon EC2 instances (run, describe, wait for a state, terminate, health, tenant quota) over the EC2 Query API",
    capabilities: csmp_sdk::Capabilities::none()
        .http_host("*.amazonaws.com")
        .secret("aws_*"),
    run: run,
}

#[cfg(test)]
mod tests;
