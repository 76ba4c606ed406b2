//! The JSON shapes the API answers with, built from stored rows.

use serde::Serialize;
use serde_json::Value as Json;
use utoipa::ToSchema;

use crate::plan::CatalogPlan;
use crate::plugin::PluginDescriptor;
use crate::store::{AuditRow, EventRow, RequestView, RunRow, StepRow, TenantRow, TokenRow};

/// RFC 3339 text of a time in ms since the epoch.
pub(super) fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(super) fn opt_time(ms: Option<i64>) -> Option<String> {
    ms.map(time)
}

/// An orderable service.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct CatalogEntryView {
    /// What to put in `catalog_id` when ordering.
    pub id: String,
    /// Short title.
    pub title: String,
    /// What the client gets.
    pub description: Option<String>,
    /// JSON Schema of `inputs` when ordering.
    #[schema(value_type = Object)]
    pub inputs: Json,
    /// Values used for inputs left out.
    #[schema(value_type = Object)]
    pub defaults: Json,
    /// Roles that approve a request before its run starts; empty when there is no gate.
    pub approval_roles: Vec<String>,
    /// Fulfilment deadline after submission, in seconds.
    pub fulfil_within_seconds: Option<u64>,
    /// The availability objective of its requests, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo: Option<crate::slo::Objective>,
}

impl CatalogEntryView {
    pub(super) fn of(p: &CatalogPlan) -> Self {
        Self {
            id: p.id.clone(),
            title: p.title.clone(),
            description: p.description.clone(),
            inputs: p
                .inputs
                .as_ref()
                .map_or_else(|| serde_json::json!({}), |s| s.json.clone()),
            defaults: p.defaults.clone(),
            approval_roles: p.approval_roles.clone(),
            fulfil_within_seconds: p.fulfil_within.map(|d| d.as_secs()),
            slo: p.slo,
        }
    }
}

/// A page of catalog entries.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct CatalogList {
    /// The entries.
    pub items: Vec<CatalogEntryView>,
}

/// Where a request is.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum RequestStatus {
    /// Accepted; its run starts next.
    Submitted,
    /// Waiting for an approver.
    AwaitingApproval,
    /// Refused by an approver.
    Rejected,
    /// Its run is under way.
    Running,
    /// Its run succeeded.
    Fulfilled,
    /// Its run failed.
    Failed,
    /// Its run was cancelled.
    Cancelled,
}

impl RequestStatus {
    fn of(s: &str) -> Self {
        match s {
            "awaiting_approval" => Self::AwaitingApproval,
            "rejected" => Self::Rejected,
            "running" => Self::Running,
            "fulfilled" => Self::Fulfilled,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => Self::Submitted,
        }
    }
}

/// The approval gate of a request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct ApprovalView {
    /// Roles that may decide.
    pub roles: Vec<String>,
    /// Token id of who decided.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<String>,
    /// The approver's comment.
    pub comment: Option<String>,
}

/// A request's service-level deadline.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct SlaView {
    /// When it must be fulfilled by.
    pub deadline: String,
    /// Whether the deadline passed before fulfilment (or has passed, unfulfilled).
    pub breached: bool,
}

/// A client's order of a catalog entry.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct RequestBody {
    /// Its id.
    pub id: String,
    /// The entry ordered.
    pub catalog_id: String,
    /// The tenant it is for.
    pub tenant: String,
    /// Token id of who ordered.
    pub requester: String,
    /// Where it is.
    pub status: RequestStatus,
    /// The inputs, defaults applied.
    #[schema(value_type = Object)]
    pub inputs: Json,
    /// The run delivering it, once started.
    pub run_id: Option<String>,
    /// Link to the run, once started.
    pub run_url: Option<String>,
    /// The approval gate, when the entry has one.
    pub approval: Option<ApprovalView>,
    /// The SLA, when the entry has one.
    pub sla: Option<SlaView>,
    /// Submission time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// When it reached a final state.
    pub finished_at: Option<String>,
}

impl RequestBody {
    pub(super) fn of(v: &RequestView, now_ms: i64) -> Self {
        let r = &v.request;
        Self {
            id: r.id.clone(),
            catalog_id: r.catalog_id.clone(),
            tenant: r.tenant.clone(),
            requester: r.requester.clone(),
            status: RequestStatus::of(v.status()),
            inputs: r.inputs.clone(),
            run_id: r.run_id.clone(),
            run_url: r.run_id.as_ref().map(|id| format!("/v1/runs/{id}")),
            approval: (!r.approval_roles.is_empty()).then(|| ApprovalView {
                roles: r.approval_roles.clone(),
                decided_by: r.decided_by.clone(),
                decided_at: opt_time(r.decided_at),
                comment: r.decision_note.clone(),
            }),
            sla: r.sla_deadline.map(|d| SlaView {
                deadline: time(d),
                breached: v.sla_breached(now_ms),
            }),
            created_at: time(r.created_at),
            // A started request's state is its run's: its run ending changes it too.
            updated_at: time(r.updated_at.max(v.run_finished_at.unwrap_or(i64::MIN))),
            finished_at: opt_time(v.finished_at()),
        }
    }
}

/// A page of requests.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct RequestList {
    /// The requests, newest first.
    pub items: Vec<RequestBody>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum RunStatusView {
    /// Steps are executing.
    Running,
    /// A step failed; compensations and `on_failure` are running.
    Failing,
    /// Being cancelled.
    Cancelling,
    /// Waiting because its workflow version does not plan now (see `blocked`); it goes on
    /// when that is fixed.
    Blocked,
    /// Paused by an operator: nothing new starts until it is resumed (see `paused_at`).
    Paused,
    /// Done.
    Succeeded,
    /// Failed.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl RunStatusView {
    fn of(r: &RunRow) -> Self {
        use crate::store::RunStatus as S;
        if r.blocked.is_some() && !r.status.is_final() {
            return Self::Blocked;
        }
        if r.paused_at.is_some() && r.status == S::Running {
            return Self::Paused;
        }
        match r.status {
            S::Running => Self::Running,
            S::Failing => Self::Failing,
            S::Cancelling => Self::Cancelling,
            S::Succeeded => Self::Succeeded,
            S::Failed => Self::Failed,
            S::Cancelled => Self::Cancelled,
        }
    }
}

/// A run, without its steps.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct RunSummary {
    /// Its id.
    pub id: String,
    /// Workflow name.
    pub workflow: String,
    /// The version it runs.
    pub version: u32,
    /// The tenant it runs for.
    pub tenant: String,
    /// Where it is.
    pub status: RunStatusView,
    /// Why it failed.
    pub error: Option<String>,
    /// Why it waits, while it is blocked, and what fixes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
    /// The parent run, for a sub-workflow.
    pub parent_run: Option<String>,
    /// Start.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// End.
    pub finished_at: Option<String>,
    /// Since when it is paused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_at: Option<String>,
    /// Key/value labels it was started with (`POST /v1/runs`).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

impl RunSummary {
    /// The run with its labels.
    pub(super) fn labelled(
        r: &RunRow,
        labels: Option<&std::collections::BTreeMap<String, String>>,
    ) -> Self {
        Self {
            labels: labels.cloned().unwrap_or_default(),
            ..Self::of(r)
        }
    }

    pub(super) fn of(r: &RunRow) -> Self {
        Self {
            id: r.id.clone(),
            workflow: r.workflow.clone(),
            version: r.version,
            tenant: r.tenant.clone(),
            status: RunStatusView::of(r),
            error: r.error.clone(),
            blocked: r.blocked.clone().filter(|_| !r.status.is_final()),
            parent_run: r.parent_run.clone(),
            created_at: time(r.created_at),
            updated_at: time(r.updated_at),
            finished_at: opt_time(r.finished_at),
            paused_at: opt_time(r.paused_at.filter(|_| !r.status.is_final())),
            labels: std::collections::BTreeMap::new(),
        }
    }
}

/// One step (or fan-out item, or compensation) of a run.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct StepView {
    /// `id`, `id#N` for fan-out item N, `~id` for a compensation, `!id` for `on_failure`.
    pub key: String,
    /// The step's id in the workflow.
    pub step: String,
    /// `pending`, `running`, `waiting`, `retrying`, `succeeded`, `failed`, `skipped`, `cancelled`.
    pub status: String,
    /// Attempts started.
    pub attempts: u32,
    /// Output once succeeded (`null` before).
    pub output: Json,
    /// Error once failed (or of the last attempt, while retrying).
    pub error: Option<String>,
    /// First start.
    pub started_at: Option<String>,
    /// End.
    pub finished_at: Option<String>,
    /// When a waiting step next wakes (timer, retry, timeout).
    pub wakes_at: Option<String>,
}

impl StepView {
    pub(super) fn of(s: &StepRow) -> Self {
        Self {
            key: s.key.to_string(),
            step: s.key.step_id().to_string(),
            status: s.status.as_str().into(),
            attempts: s.attempt,
            output: s.output.clone().unwrap_or(Json::Null),
            error: s.error.clone(),
            started_at: opt_time(s.started_at),
            finished_at: opt_time(s.finished_at),
            wakes_at: opt_time(s.wake_at),
        }
    }
}

/// A run with its steps.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct RunDetail {
    /// The run.
    #[serde(flatten)]
    pub run: RunSummary,
    /// Its inputs.
    #[schema(value_type = Object)]
    pub inputs: Json,
    /// Its outputs once succeeded (`null` before).
    pub outputs: Json,
    /// A page of its units in plan order (a step after what it needs, fan-out items in item
    /// order, then `on_failure` steps, then compensations).
    pub steps: Vec<StepView>,
    /// Pass as `cursor` for the next page of units; absent on the last page.
    pub next_cursor: Option<String>,
    /// How many units of each step are in each status, for the whole run (a fan-out of any
    /// width is one line per status here).
    pub counts: Vec<StepCount>,
    /// Each retry of the run (`POST /v1/runs/{id}/retry`), oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retries: Vec<RetryView>,
}

/// One retry of a run.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct RetryView {
    /// 1 for the first.
    pub n: i64,
    /// When.
    pub at: String,
    /// The token id that asked.
    pub by: String,
    /// The units it ran again.
    pub units: Vec<String>,
}

impl RetryView {
    pub(super) fn of(r: &crate::store::RetryRow) -> Self {
        Self {
            n: r.n,
            at: time(r.at),
            by: r.by.clone(),
            units: r.units.clone(),
        }
    }
}

/// How many units of one step are in one status.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct StepCount {
    /// The step's id.
    pub step: String,
    /// The status.
    pub status: String,
    /// How many of its units (one, or a fan-out's items) are in it.
    pub count: i64,
}

/// One server-sent event of `GET /v1/runs/{id}/events`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct RunStreamEvent {
    /// `snapshot` (data: the run with its first page of units and its counts, as
    /// `GET /v1/runs/{id}`), `step` (data: `{run_id, step, status, error}`) or `run` (data:
    /// `{run_id, status, error, outputs}`; the last event of a run that ended carries its
    /// outputs, so a follower needs no further call).
    pub event: String,
    /// The event's JSON, as text.
    pub data: String,
}

/// A page of runs.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct RunList {
    /// The runs, newest first.
    pub items: Vec<RunSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A received alert notification.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct EventView {
    /// Its id.
    pub id: String,
    /// `alertmanager` or `grafana`.
    pub source: String,
    /// Arrival.
    pub received_at: String,
    /// Token id of the sender.
    pub received_by: String,
    /// The notification's status (`firing`, `resolved`), as sent.
    pub status: Option<String>,
    /// Alerts it carried.
    pub alerts: u32,
}

impl EventView {
    pub(super) fn of(e: &EventRow) -> Self {
        Self {
            id: e.id.clone(),
            source: e.source.clone(),
            received_at: time(e.received_at),
            received_by: e.received_by.clone(),
            status: e.status.clone(),
            alerts: e.alerts,
        }
    }
}

/// A page of events.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct EventList {
    /// Newest first.
    pub items: Vec<EventView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// One audit-log entry.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct AuditView {
    /// Sequence number.
    pub id: i64,
    /// When.
    pub at: String,
    /// Token id of the caller (absent when it presented no valid token).
    pub actor: Option<String>,
    /// The caller's role.
    pub role: Option<String>,
    /// The caller's tenant.
    pub tenant: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Response status.
    pub status: u16,
    /// Peer address.
    pub remote: String,
}

impl AuditView {
    pub(super) fn of(a: &AuditRow) -> Self {
        Self {
            id: a.id,
            at: time(a.at),
            actor: a.actor.clone(),
            role: a.role.clone(),
            tenant: a.tenant.clone(),
            method: a.method.clone(),
            path: a.path.clone(),
            status: a.status,
            remote: a.remote.clone(),
        }
    }
}

/// A page of the audit log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct AuditList {
    /// Newest first.
    pub items: Vec<AuditView>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A token, without its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct TokenView {
    /// Public id.
    pub id: String,
    /// `admin`, `operator`, `client` or `integration`.
    pub role: String,
    /// The tenant of a client token.
    pub tenant: Option<String>,
    /// Label.
    pub name: Option<String>,
    /// Creation.
    pub created_at: String,
    /// Revocation.
    pub revoked_at: Option<String>,
}

impl TokenView {
    pub(super) fn of(t: &TokenRow) -> Self {
        Self {
            id: t.id.clone(),
            role: t.role.clone(),
            tenant: t.tenant.clone(),
            name: t.name.clone(),
            created_at: time(t.created_at),
            revoked_at: opt_time(t.revoked_at),
        }
    }
}

/// Every token.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct TokenList {
    /// Oldest first.
    pub items: Vec<TokenView>,
}

/// A new token; the secret is shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct CreatedToken {
    /// The bearer token. Store it now: only its hash is kept.
    pub token: String,
    /// Its record.
    #[serde(flatten)]
    pub info: TokenView,
}

/// A tenant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct TenantView {
    /// Its id.
    pub id: String,
    /// CIDRs its clients may call from; empty = anywhere.
    pub allowlist: Vec<String>,
    /// Creation.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl TenantView {
    pub(super) fn of(t: &TenantRow) -> Self {
        Self {
            id: t.id.clone(),
            allowlist: t.allowlist.clone(),
            created_at: time(t.created_at),
            updated_at: time(t.updated_at),
        }
    }
}

/// Every tenant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct TenantList {
    /// By id.
    pub items: Vec<TenantView>,
}

/// What a plugin asks for.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct CapabilitiesView {
    /// Hosts it wants to reach.
    pub http_hosts: Vec<String>,
    /// Secrets it wants to read.
    pub secrets: Vec<String>,
}

/// A loaded plugin version.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct PluginView {
    /// Name used in `uses:`.
    pub name: String,
    /// Semver version.
    pub version: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its input.
    #[schema(value_type = Object)]
    pub input_schema: Json,
    /// JSON Schema of its output.
    #[schema(value_type = Object)]
    pub output_schema: Json,
    /// What it asks for (the operator's grants decide what it gets).
    pub capabilities: CapabilitiesView,
}

impl PluginView {
    pub(super) fn of(d: &PluginDescriptor) -> Self {
        Self {
            name: d.name.clone(),
            version: d.version.to_string(),
            description: d.description.clone(),
            input_schema: d.input_schema.clone(),
            output_schema: d.output_schema.clone(),
            capabilities: CapabilitiesView {
                http_hosts: d.capabilities.http_hosts.clone(),
                secrets: d.capabilities.secrets.clone(),
            },
        }
    }
}

/// Every loaded plugin.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct PluginList {
    /// By name, then version.
    pub items: Vec<PluginView>,
}

/// A stored plugin upload.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct PluginUploaded {
    /// The plugin as loaded, with its grant.
    #[serde(flatten)]
    pub plugin: super::grants::PluginDetail,
    /// sha256 of the binary.
    pub sha256: String,
    /// `false` when the same binary was already stored.
    pub created: bool,
}

/// A workflow and its versions.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct WorkflowSummary {
    /// Its name.
    pub name: String,
    /// The newest version (what new runs use).
    pub latest_version: u32,
    /// Every runnable version, ascending.
    pub versions: Vec<u32>,
    /// Description of the newest version.
    pub description: Option<String>,
}

/// Every workflow.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct WorkflowList {
    /// By name.
    pub items: Vec<WorkflowSummary>,
}

/// One stored version of a workflow.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct WorkflowVersion {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: u32,
    /// sha256 of the source.
    pub sha256: String,
    /// The YAML as uploaded.
    pub source: String,
}

/// The versions of one workflow.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct WorkflowVersions {
    /// Its name.
    pub name: String,
    /// Ascending.
    pub versions: Vec<WorkflowVersion>,
}

/// An accepted workflow upload.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct WorkflowUploaded {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: u32,
    /// sha256 of the source.
    pub sha256: String,
    /// `false` when the same content was already stored.
    pub created: bool,
}
