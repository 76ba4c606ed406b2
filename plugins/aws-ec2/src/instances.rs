//! EC2's answers read into plain records: instances out of `DescribeInstances` and
//! `RunInstances`, state changes out of `TerminateInstances`, health out of
//! `DescribeInstanceStatus`.
//!
//! Pure XML reading; knows nothing about requests or the plugin's input.

use std::collections::BTreeMap;

use csmp_sdk::PluginError;
use csmp_sdk::aws::xml::{self, roxmltree::Node};
use csmp_sdk::schemars::JsonSchema;
use csmp_sdk::serde::Serialize;

/// One instance as the step's output shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde")]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct Instance {
    /// `i-0123456789abcdef0`.
    pub id: String,
    /// `pending`, `running`, `stopping`, `stopped`, `shutting-down` or `terminated`.
    pub state: String,
    /// `t3.micro`, ...
    pub instance_type: Option<String>,
    /// Where it runs.
    pub availability_zone: Option<String>,
    /// Its private address.
    pub private_ip: Option<String>,
    /// Its public address, if it has one.
    pub public_ip: Option<String>,
    /// When it was launched (RFC 3339).
    pub launch_time: Option<String>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

/// An instance's state before and after a state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde")]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct StateChange {
    /// The instance.
    pub id: String,
    /// Its state before the call.
    pub previous_state: String,
    /// Its state after it.
    pub current_state: String,
}

/// An instance's health checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(crate = "csmp_sdk::serde")]
#[schemars(crate = "csmp_sdk::schemars")]
pub struct Status {
    /// The instance.
    pub id: String,
    /// Its state (`running`, ...).
    pub state: String,
    /// The instance check: `ok`, `impaired`, `initializing`, `insufficient-data`,
    /// `not-applicable`.
    pub instance_status: String,
    /// The system (host) check, same values.
    pub system_status: String,
}

/// The instances of a `DescribeInstances` answer (every reservation) and its `nextToken`.
pub fn described(text: &str) -> Result<(Vec<Instance>, Option<String>), PluginError> {
    let doc = xml::parse(text, "ec2 DescribeInstances")?;
    let root = doc.root_element();
    let instances = xml::list(root, &["reservationSet"])
        .into_iter()
        .flat_map(|r| xml::list(r, &["instancesSet"]))
        .map(instance)
        .collect::<Result<_, _>>()?;
    Ok((instances, xml::string(root, &["nextToken"])))
}

/// The instances a `RunInstances` answer says were launched.
pub fn launched(text: &str) -> Result<Vec<Instance>, PluginError> {
    let doc = xml::parse(text, "ec2 RunInstances")?;
    xml::list(doc.root_element(), &["instancesSet"])
        .into_iter()
        .map(instance)
        .collect()
}

/// The state changes of a `TerminateInstances` answer.
pub fn state_changes(text: &str) -> Result<Vec<StateChange>, PluginError> {
    let doc = xml::parse(text, "ec2 TerminateInstances")?;
    Ok(xml::list(doc.root_element(), &["instancesSet"])
        .into_iter()
        .map(|item| StateChange {
            id: xml::string(item, &["instanceId"]).unwrap_or_default(),
            previous_state: xml::string(item, &["previousState", "name"]).unwrap_or_default(),
            current_state: xml::string(item, &["currentState", "name"]).unwrap_or_default(),
        })
        .collect())
}

/// The statuses of a `DescribeInstanceStatus` answer and its `nextToken`.
pub fn statuses(text: &str) -> Result<(Vec<Status>, Option<String>), PluginError> {
    let doc = xml::parse(text, "ec2 DescribeInstanceStatus")?;
    let root = doc.root_element();
    let statuses = xml::list(root, &["instanceStatusSet"])
        .into_iter()
        .map(|item| Status {
            id: xml::string(item, &["instanceId"]).unwrap_or_default(),
            state: xml::string(item, &["instanceState", "name"]).unwrap_or_default(),
            instance_status: xml::string(item, &["instanceStatus", "status"])
                .unwrap_or_else(|| "not-applicable".into()),
            system_status: xml::string(item, &["systemStatus", "status"])
                .unwrap_or_else(|| "not-applicable".into()),
        })
        .collect();
    Ok((statuses, xml::string(root, &["nextToken"])))
}

fn instance(item: Node<'_, '_>) -> Result<Instance, PluginError> {
    let id = xml::string(item, &["instanceId"])
        .ok_or_else(|| PluginError::permanent("ec2 answered an instance without an instanceId"))?;
    let tags = xml::list(item, &["tagSet"])
        .into_iter()
        .filter_map(|t| {
            Some((
                xml::string(t, &["key"])?,
                xml::string(t, &["value"]).unwrap_or_default(),
            ))
        })
        .collect();
    Ok(Instance {
        id,
        state: xml::string(item, &["instanceState", "name"]).unwrap_or_default(),
        instance_type: xml::string(item, &["instanceType"]),
        availability_zone: xml::string(item, &["placement", "availabilityZone"]),
        private_ip: xml::string(item, &["privateIpAddress"]),
        public_ip: xml::string(item, &["ipAddress"]),
        launch_time: xml::string(item, &["launchTime"]),
        tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_recorded_describe_instances() -> Result<(), PluginError> {
        let (instances, next) = described(include_str!("../fixtures/ec2-describe-instances.xml"))?;
        assert_eq!(next, None);
        assert_eq!(instances.len(), 1);
        let i = &instances[0];
        assert!(i.id.starts_with("i-"), "{i:?}");
        assert_eq!(i.state, "running");
        assert_eq!(i.instance_type.as_deref(), Some("t3.micro"));
        assert_eq!(i.availability_zone.as_deref(), Some("us-east-1a"));
        assert!(i.private_ip.is_some() && i.launch_time.is_some());
        assert_eq!(i.tags.get("csmp:tenant").map(String::as_str), Some("acme"));
        assert_eq!(i.tags.get("Name").map(String::as_str), Some("web-0"));

        let (none, _) = described(include_str!("../fixtures/ec2-describe-instances-empty.xml"))?;
        assert!(none.is_empty());
        Ok(())
    }

    #[test]
    fn reads_recorded_run_terminate_and_status_answers() -> Result<(), PluginError> {
        let run = launched(include_str!("../fixtures/ec2-run-instances.xml"))?;
        assert_eq!(run.len(), 1);
        assert_eq!(
            run[0].tags.get("csmp:tenant").map(String::as_str),
            Some("acme")
        );

        let changes = state_changes(include_str!("../fixtures/ec2-terminate-instances.xml"))?;
        assert_eq!(changes.len(), 1);
        assert_eq!(
            (
                changes[0].previous_state.as_str(),
                changes[0].current_state.as_str()
            ),
            ("running", "shutting-down")
        );

        let (status, _) = statuses(include_str!("../fixtures/ec2-describe-instance-status.xml"))?;
        assert_eq!(status.len(), 1);
        assert_eq!(
            (
                status[0].state.as_str(),
                status[0].instance_status.as_str(),
                status[0].system_status.as_str()
            ),
            ("running", "ok", "ok")
        );
        Ok(())
    }
}
