//! The `aws-autoscaling` built-in plugin: Amazon EC2 Auto Scaling groups over the Auto
//! Scaling Query API — describe groups (optionally until their instances are in service), set
//! the desired capacity (absolute, relative, or only ever raising it, with a dry run), and
//! change a group's minimum and maximum size — on AWS or an Auto Scaling-compatible endpoint.
//!
//! Every change reports the values it replaced, so a `compensate:` can put them back.
//! Credentials, region and endpoint: see `csmp_sdk::aws` (secrets `aws_*`). Knows nothing
//! about the host beyond the SDK.

use std::collections::BTreeMap;

use csmp_sdk::aws::xml::{self, roxmltree::Node};
use csmp_sdk::aws::{self, Client, Params, Target};
use csmp_sdk::schemars::JsonSchema;
use csmp_sdk::serde::{Deserialize, Serialize};
use csmp_sdk::{Context, PluginError};

/// The step's `with:`: one action.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", tag = "action", rename_all = "snake_case")]
#[schemars(crate = "csmp_sdk::schemars", transform = csmp_sdk::dispatch_on_action)]
pub enum Input {
    /// Describe groups; with `until_in_service`, fail (retryably) until each has as many
    /// healthy in-service instances as it desires.
    DescribeGroups(DescribeGroups),
    /// Set a group's desired capacity.
    SetDesiredCapacity(SetDesiredCapacity),
    /// Change a group's minimum, maximum (and optionally desired) size.
    UpdateGroup(UpdateGroup),
}

/// `describe_groups`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct DescribeGroups {
    /// Group names; every group when empty.
    #[serde(default)]
    pub names: Vec<String>,
    /// Fail with a retryable error until every group has its desired number of healthy
    /// in-service instances (so the step's `retry:` polls with durable waits).
    #[serde(default)]
    pub until_in_service: bool,
    /// Where and as whom to call Auto Scaling.
    #[serde(default)]
    pub aws: Target,
}

/// `set_desired_capacity`: exactly one of `desired` and `change_by`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct SetDesiredCapacity {
    /// The group.
    pub group: String,
    /// The new desired capacity; it must lie within the group's minimum and maximum.
    #[serde(default)]
    pub desired: Option<u32>,
    /// Add (or, negative, remove) this many instances; the result is kept within the
    /// group's minimum and maximum.
    #[serde(default)]
    pub change_by: Option<i64>,
    /// Never lower the capacity: when the group already desires at least the target,
    /// change nothing.
    #[serde(default)]
    pub never_lower: bool,
    /// Respect the group's cooldown (AWS refuses the change while it runs).
    #[serde(default)]
    pub honor_cooldown: bool,
    /// Work out and report the change without making it.
    #[serde(default)]
    pub dry_run: bool,
    /// Refuse (permanently) unless the group carries all these tags, such as
    /// `{"csmp:tenant": "{{ run.tenant }}"}` so a tenant can only change its own groups.
    #[serde(default)]
    pub require_tags: BTreeMap<String, String>,
    /// Where and as whom to call Auto Scaling.
    #[serde(default)]
    pub aws: Target,
}

/// `update_group`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct UpdateGroup {
    /// The group.
    pub group: String,
    /// The new minimum size.
    #[serde(default)]
    pub min_size: Option<u32>,
    /// The new maximum size.
    #[serde(default)]
    pub max_size: Option<u32>,
    /// The new desired capacity.
    #[serde(default)]
    pub desired: Option<u32>,
    /// Refuse (permanently) unless the group carries all these tags, such as
    /// `{"csmp:tenant": "{{ run.tenant }}"}` so a tenant can only change its own groups.
    #[serde(default)]
    pub require_tags: BTreeMap<String, String>,
    /// Where and as whom to call Auto Scaling.
    #[serde(default)]
    pub aws: Target,
}

/// One instance of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde")]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct Member {
    /// The EC2 instance.
    pub id: String,
    /// `Pending`, `InService`, `Terminating`, ...
    pub lifecycle_state: String,
    /// `Healthy` or `Unhealthy`.
    pub health_status: String,
}

/// One group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde")]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct Group {
    /// Its name.
    pub name: String,
    /// Its minimum size.
    pub min_size: u32,
    /// Its maximum size.
    pub max_size: u32,
    /// How many instances it wants.
    pub desired_capacity: u32,
    /// How many healthy instances are in service.
    pub in_service: u32,
    /// Its instances.
    pub instances: Vec<Member>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

/// The step's output: which shape depends on the action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde", untagged)]
#[schemars(crate = "csmp_sdk::schemars")]
pub enum Output {
    /// `describe_groups`.
    Groups(Groups),
    /// `set_desired_capacity`.
    Capacity(Capacity),
    /// `update_group`.
    Updated(Updated),
}

/// What `describe_groups` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde")]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct Groups {
    /// The groups found.
    pub groups: Vec<Group>,
}

/// What `set_desired_capacity` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde")]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct Capacity {
    /// The group.
    pub group: String,
    /// Its desired capacity before the step (what a compensation restores).
    pub previous_desired: u32,
    /// Its desired capacity after the step (or, in a dry run, what it would be).
    pub desired: u32,
    /// Whether the capacity was (or, in a dry run, would be) changed.
    pub changed: bool,
    /// Whether this was a dry run (nothing changed).
    pub dry_run: bool,
    /// The group's minimum size.
    pub min_size: u32,
    /// The group's maximum size.
    pub max_size: u32,
}

/// What `update_group` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde")]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct Updated {
    /// The group.
    pub group: String,
    /// Minimum size before and after.
    pub previous_min_size: u32,
    /// See `previous_min_size`.
    pub min_size: u32,
    /// Maximum size before and after.
    pub previous_max_size: u32,
    /// See `previous_max_size`.
    pub max_size: u32,
    /// Desired capacity before and after.
    pub previous_desired: u32,
    /// See `previous_desired`.
    pub desired: u32,
}

/// Runs one action.
pub fn run(ctx: &Context, input: Input) -> Result<Output, PluginError> {
    match input {
        Input::DescribeGroups(i) => describe(ctx, i).map(Output::Groups),
        Input::SetDesiredCapacity(i) => set_desired(ctx, i).map(Output::Capacity),
        Input::UpdateGroup(i) => update(ctx, i).map(Output::Updated),
    }
}

fn describe(ctx: &Context, input: DescribeGroups) -> Result<Groups, PluginError> {
    let client = Client::connect(ctx, aws::AUTOSCALING, &input.aws)?;
    let groups = groups(&client, &input.names)?;
    if let Some(missing) = input
        .names
        .iter()
        .find(|n| !groups.iter().any(|g| &g.name == *n))
    {
        return Err(no_such_group(missing));
    }
    if input.until_in_service {
        let short: Vec<String> = groups
            .iter()
            .filter(|g| g.in_service < g.desired_capacity)
            .map(|g| {
                format!(
                    "{} has {} of {} in service",
                    g.name, g.in_service, g.desired_capacity
                )
            })
            .collect();
        if !short.is_empty() {
            return Err(PluginError::retryable(format!(
                "{}; the step's retry policy polls again",
                short.join(", ")
            )));
        }
    }
    Ok(Groups { groups })
}

fn set_desired(ctx: &Context, input: SetDesiredCapacity) -> Result<Capacity, PluginError> {
    let client = Client::connect(ctx, aws::AUTOSCALING, &input.aws)?;
    let group = one_group(&client, &input.group, &input.require_tags)?;
    let current = group.desired_capacity;
    let target = match (input.desired, input.change_by) {
        (Some(desired), None) => {
            // Keeping a larger current capacity is always within the group's range.
            let desired = if input.never_lower {
                desired.max(current)
            } else {
                desired
            };
            if desired < group.min_size || desired > group.max_size {
                return Err(PluginError::permanent(format!(
                    "desired capacity {desired} is outside group {}'s range {}–{}; change its \
                     min_size/max_size with update_group first",
                    group.name, group.min_size, group.max_size
                )));
            }
            desired
        }
        (None, Some(change)) => {
            let wanted = i64::from(current).saturating_add(change);
            let kept = wanted.clamp(i64::from(group.min_size), i64::from(group.max_size));
            if kept != wanted {
                ctx.warn(format!(
                    "{} {change:+} would be {wanted}; kept within {}–{} at {kept}",
                    group.name, group.min_size, group.max_size
                ));
            }
            u32::try_from(kept).unwrap_or(group.max_size)
        }
        _ => {
            return Err(PluginError::permanent(
                "give exactly one of `desired` (a number of instances) and `change_by` (a change)",
            ));
        }
    };
    let target = if input.never_lower {
        target.max(current)
    } else {
        target
    };
    let changed = target != current;
    if changed && !input.dry_run {
        let params = Params::new()
            .set("AutoScalingGroupName", &group.name)
            .set("DesiredCapacity", target)
            .set("HonorCooldown", input.honor_cooldown);
        client.query("SetDesiredCapacity", &params)?;
    }
    ctx.info(match (changed, input.dry_run) {
        (false, _) => format!(
            "{} already desires {current}; nothing to change",
            group.name
        ),
        (true, true) => format!(
            "dry run: would set {} from {current} to {target}",
            group.name
        ),
        (true, false) => format!("set {} from {current} to {target}", group.name),
    });
    Ok(Capacity {
        group: group.name,
        previous_desired: current,
        desired: target,
        changed,
        dry_run: input.dry_run,
        min_size: group.min_size,
        max_size: group.max_size,
    })
}

fn update(ctx: &Context, input: UpdateGroup) -> Result<Updated, PluginError> {
    let client = Client::connect(ctx, aws::AUTOSCALING, &input.aws)?;
    let group = one_group(&client, &input.group, &input.require_tags)?;
    let min_size = input.min_size.unwrap_or(group.min_size);
    let max_size = input.max_size.unwrap_or(group.max_size);
    if min_size > max_size {
        return Err(PluginError::permanent(format!(
            "min_size {min_size} is above max_size {max_size} for group {}",
            group.name
        )));
    }
    let desired = input
        .desired
        .unwrap_or(group.desired_capacity)
        .clamp(min_size, max_size);
    let params = Params::new()
        .set("AutoScalingGroupName", &group.name)
        .set_opt("MinSize", input.min_size)
        .set_opt("MaxSize", input.max_size)
        .set_opt(
            "DesiredCapacity",
            (desired != group.desired_capacity).then_some(desired),
        );
    client.query("UpdateAutoScalingGroup", &params)?;
    ctx.info(format!(
        "{}: min {}→{min_size}, max {}→{max_size}, desired {}→{desired}",
        group.name, group.min_size, group.max_size, group.desired_capacity
    ));
    Ok(Updated {
        group: group.name,
        previous_min_size: group.min_size,
        min_size,
        previous_max_size: group.max_size,
        max_size,
        previous_desired: group.desired_capacity,
        desired,
    })
}

fn one_group(
    client: &Client<'_>,
    name: &str,
    require_tags: &BTreeMap<String, String>,
) -> Result<Group, PluginError> {
    let group = groups(client, std::slice::from_ref(&name.to_owned()))?
        .into_iter()
        .find(|g| g.name == name)
        .ok_or_else(|| no_such_group(name))?;
    for (key, wanted) in require_tags {
        if group.tags.get(key) != Some(wanted) {
            return Err(PluginError::permanent(format!(
                "group {name} is not tagged {key}={wanted}, so this step may not change it; \
                 tag the group or change a group that carries the tag"
            )));
        }
    }
    Ok(group)
}

fn no_such_group(name: &str) -> PluginError {
    PluginError::permanent(format!(
        "there is no auto scaling group `{name}` in this region; check the name and the region"
    ))
}

/// `DescribeAutoScalingGroups`, following `NextToken`.
fn groups(client: &Client<'_>, names: &[String]) -> Result<Vec<Group>, PluginError> {
    let mut found = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..20 {
        let params = Params::new()
            .list("AutoScalingGroupNames.member", names)
            .set_opt("NextToken", token.as_ref());
        let answer = client.query("DescribeAutoScalingGroups", &params)?;
        let (page, next) = parse_groups(&answer.text)?;
        found.extend(page);
        token = next;
        if token.is_none() {
            break;
        }
    }
    Ok(found)
}

/// The groups of a `DescribeAutoScalingGroups` answer and its `NextToken`.
pub fn parse_groups(text: &str) -> Result<(Vec<Group>, Option<String>), PluginError> {
    let doc = xml::parse(text, "autoscaling DescribeAutoScalingGroups")?;
    let result =
        xml::child(doc.root_element(), "DescribeAutoScalingGroupsResult").ok_or_else(|| {
            PluginError::permanent("autoscaling answered without a DescribeAutoScalingGroupsResult")
        })?;
    let groups = xml::list(result, &["AutoScalingGroups"])
        .into_iter()
        .map(group)
        .collect::<Result<_, _>>()?;
    Ok((groups, xml::string(result, &["NextToken"])))
}

fn group(node: Node<'_, '_>) -> Result<Group, PluginError> {
    let name = xml::string(node, &["AutoScalingGroupName"])
        .ok_or_else(|| PluginError::permanent("autoscaling answered a group without a name"))?;
    let size = |field: &str| {
        xml::number::<u32>(node, &[field]).ok_or_else(|| {
            PluginError::permanent(format!("autoscaling answered group {name} without {field}"))
        })
    };
    let instances: Vec<Member> = xml::list(node, &["Instances"])
        .into_iter()
        .map(|m| Member {
            id: xml::string(m, &["InstanceId"]).unwrap_or_default(),
            lifecycle_state: xml::string(m, &["LifecycleState"]).unwrap_or_default(),
            health_status: xml::string(m, &["HealthStatus"]).unwrap_or_default(),
        })
        .collect();
    let in_service = instances
        .iter()
        .filter(|m| m.lifecycle_state == "InService" && m.health_status == "Healthy")
        .count();
    let tags = xml::list(node, &["Tags"])
        .into_iter()
        .filter_map(|t| {
            Some((
                xml::string(t, &["Key"])?,
                xml::string(t, &["Value"]).unwrap_or_default(),
            ))
        })
        .collect();
    Ok(Group {
        tags,
        min_size: size("MinSize")?,
        max_size: size("MaxSize")?,
        desired_capacity: size("DesiredCapacity")?,
        in_service: u32::try_from(in_service).unwrap_or(u32::MAX),
        instances,
        name,
    })
}

csmp_sdk::plugin! {
    name: "aws-autoscaling",
    version: env!("CARGO_PKG_VERSION"),
    description: "Amazon EC2 Auto Scaling groups (describe, wait until in service, set desired capacity, update min/max) over the Auto Scaling Query API",
    capabilities: csmp_sdk::Capabilities::none()
        .http_host("*.amazonaws.com")
        .secret("aws_*"),
    run: run,
}

#[cfg(test)]
mod tests;
