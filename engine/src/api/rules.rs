//! Alert rules: loaded from the rules directory at start, set and deleted over
//! `/v1/rules/{name}` (kept across restarts, laid over the directory's), and tried against
//! given or stored alerts by `POST /v1/rules/test`, which changes nothing.

use std::collections::BTreeMap;
use std::path::Path;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::audit::Audit;
use super::auth::{Principal, Role};
use super::problem::{Problem, RawBody, Violation, optional_json};
use super::workflows::{invalid_definition, yaml_body};
use super::{AppState, PathParams};
use crate::alerts::dispatch::Decision;
use crate::alerts::rules::{RulePlan, validate_rule};
use crate::alerts::{Alert, Status};
use crate::plan::WorkflowNames;
use crate::store::{AlertFilter, RuleRow, Store};

/// A rule as listed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct RuleView {
    /// Its name.
    pub name: String,
    /// What it is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The workflow a group's run runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// Labels that make a group.
    pub group_by: Vec<String>,
    /// Its YAML.
    pub source: String,
}

impl RuleView {
    fn of(r: &RulePlan) -> Self {
        Self {
            name: r.name.clone(),
            description: r.description.clone(),
            workflow: r.workflow.as_ref().map(|(w, _)| w.to_string()),
            group_by: r.group_by.clone(),
            source: r.source.to_string(),
        }
    }
}

/// The rules in force.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct RuleList {
    /// By name.
    pub items: Vec<RuleView>,
}

/// Loads every rule of `dir` (each must validate, against the workflows loaded), then lays the
/// rules set or deleted over the API on top.
pub async fn load_rules(
    store: &Store,
    dir: Option<&Path>,
    workflows: &WorkflowNames,
) -> anyhow::Result<BTreeMap<String, RulePlan>> {
    let mut rules = BTreeMap::new();
    if let Some(dir) = dir.filter(|d| d.is_dir()) {
        let files = crate::cli::validate::collect_files(&[dir.to_path_buf()])
            .map_err(anyhow::Error::msg)?;
        let mut failed = 0;
        for file in files {
            let bytes = std::fs::read(&file)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
            match validate_rule(&bytes, Some(workflows)) {
                Ok(rule) => {
                    if let Some(old) = rules.insert(rule.name.clone(), rule) {
                        anyhow::bail!(
                            "rule `{}` is defined twice (again in {})",
                            old.name,
                            file.display()
                        );
                    }
                }
                Err(diagnostics) => {
                    failed += 1;
                    let report = crate::diag::FileReport {
                        file: file.display().to_string(),
                        diagnostics,
                    };
                    tracing::error!(
                        "{}",
                        report.render(std::str::from_utf8(&bytes).ok()).trim_end()
                    );
                }
            }
        }
        if failed > 0 {
            anyhow::bail!(
                "fix the rules in {} (or run `csmp validate {} workflows/`)",
                dir.display(),
                dir.display()
            );
        }
    }
    for row in store.rule_rows().await? {
        match &row.source {
            None => {
                if rules.remove(&row.name).is_some() {
                    tracing::info!(rule = %row.name, "rule `{}` of the rules directory stays deleted (deleted over the API by {})", row.name, row.updated_by);
                }
            }
            Some(source) => match validate_rule(source.as_bytes(), Some(workflows)) {
                Ok(rule) => {
                    rules.insert(rule.name.clone(), rule);
                }
                Err(d) => tracing::error!(
                    rule = %row.name,
                    "rule `{}` set over the API no longer validates ({}); it is left out until an operator puts it again or deletes it",
                    row.name,
                    crate::plan::summarize(&d)
                ),
            },
        }
    }
    Ok(rules)
}

/// Every rule in force (operators).
#[utoipa::path(get, path = "/v1/rules", tag = "alerts",
    responses(
        (status = 200, description = "The rules", body = RuleList),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators and admins read rules", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<RuleList>, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    Ok(Json(RuleList {
        items: state
            .alerts
            .rules
            .get()
            .values()
            .map(RuleView::of)
            .collect(),
    }))
}

/// One rule, with its YAML.
#[utoipa::path(get, path = "/v1/rules/{name}", tag = "alerts",
    params(("name" = String, Path, description = "Rule name")),
    responses(
        (status = 200, description = "The rule", body = RuleView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators and admins read rules", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such rule", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn get_one(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams(name): PathParams<String>,
) -> Result<Json<RuleView>, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    state
        .alerts
        .rules
        .get()
        .get(&name)
        .map(|r| Json(RuleView::of(r)))
        .ok_or_else(|| Problem::not_found("rule", &name))
}

/// Set a rule (operators): its YAML, validated like a file of the rules directory against the
/// loaded workflows, in force at once and kept across restarts.
#[utoipa::path(put, path = "/v1/rules/{name}", tag = "alerts",
    params(("name" = String, Path, description = "Rule name (the `name` in the YAML)")),
    request_body(content = String, description = "The rule's YAML", content_type = "application/yaml"),
    responses(
        (status = 200, description = "Replaced", body = RuleView),
        (status = 201, description = "Created", body = RuleView),
        (status = 400, description = "Not a valid rule: every problem with its line and column", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators and admins change rules", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not YAML", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The YAML's name is not the one in the path", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn put(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    PathParams(name): PathParams<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    yaml_body(&headers, "rule")?;
    let _one_at_a_time = state.uploads.lock().await;
    let rule = validate_rule(&body, Some(&state.workflow_names()))
        .map_err(|d| invalid_definition("rule", &d))?;
    if rule.name != name {
        return Err(Problem::invalid_at(
            "/name",
            format!(
                "the YAML names rule `{}` but was sent to /v1/rules/{name}",
                rule.name
            ),
        ));
    }
    let mut rules = (*state.alerts.rules.get()).clone();
    let status = if rules.contains_key(&name) {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    state
        .store
        .put_rule(
            &RuleRow {
                name: name.clone(),
                source: Some(String::from_utf8_lossy(&body).into_owned()),
                updated_at: state.now_ms(),
                updated_by: who.token_id.clone(),
            },
            Some(&audit.at(status)),
        )
        .await?;
    let view = RuleView::of(&rule);
    rules.insert(name, rule);
    state.alerts.rules.set(rules);
    state.alerts.wake();
    super::sync::announce(&state);
    Ok((status, Json(view)).into_response())
}

/// Delete a rule (operators): new alerts no longer match it; groups it opened keep their runs.
/// The deletion is kept across restarts (a rule of the rules directory stays hidden).
#[utoipa::path(delete, path = "/v1/rules/{name}", tag = "alerts",
    params(("name" = String, Path, description = "Rule name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators and admins change rules", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such rule", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn delete(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(audit): Extension<Audit>,
    PathParams(name): PathParams<String>,
) -> Result<StatusCode, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    let _one_at_a_time = state.uploads.lock().await;
    let mut rules = (*state.alerts.rules.get()).clone();
    if rules.remove(&name).is_none() {
        return Err(Problem::not_found("rule", &name));
    }
    state
        .store
        .put_rule(
            &RuleRow {
                name,
                source: None,
                updated_at: state.now_ms(),
                updated_by: who.token_id.clone(),
            },
            Some(&audit.at(StatusCode::NO_CONTENT)),
        )
        .await?;
    state.alerts.rules.set(rules);
    super::sync::announce(&state);
    Ok(StatusCode::NO_CONTENT)
}

/// Alerts to try, in the one alert model.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TestAlert {
    /// The source (default `webhook`).
    pub source: Option<String>,
    /// The dedup key (default: a hash of the labels).
    pub fingerprint: Option<String>,
    /// `firing` (default) or `resolved`.
    pub status: Option<String>,
    /// Its severity.
    pub severity: Option<String>,
    /// Its labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Its tenant.
    pub tenant: Option<String>,
}

/// What to try: given alerts, or the newest stored ones; against the rules in force, or
/// against one rule's YAML given here.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleTest {
    /// Alerts to try.
    #[serde(default)]
    pub alerts: Vec<TestAlert>,
    /// Or: this many of the newest stored alerts (at most 500).
    #[schema(minimum = 1, maximum = 500)]
    pub stored: Option<u32>,
    /// Try this rule (its YAML) instead of the rules in force.
    pub rule: Option<String>,
}

/// What each alert would do.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct RuleTestResult {
    /// One per alert, in order.
    pub decisions: Vec<Decision>,
}

/// Replay alerts against the rules (operators): given ones or stored ones, against the rules
/// in force or one rule sent with them. Shows what each alert would do now — deduplicated,
/// silenced, which group, start a run or signal one — and changes nothing.
#[utoipa::path(post, path = "/v1/rules/test", tag = "alerts",
    request_body = RuleTest,
    responses(
        (status = 200, description = "What each alert would do", body = RuleTestResult),
        (status = 400, description = "Malformed body, or the rule given does not validate", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only operators and admins test rules", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad alert", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub(super) async fn test(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<RuleTestResult>, Problem> {
    who.require(&[Role::Operator, Role::Admin])?;
    let req: RuleTest = optional_json(&headers, &body)?.ok_or_else(|| {
        Problem::invalid_at("", "send `{\"alerts\": [...]}` or `{\"stored\": 50}`")
    })?;
    if req.stored.is_some_and(|n| !(1..=500).contains(&n)) {
        return Err(Problem::invalid_at(
            "/stored",
            "replay from 1 to 500 stored alerts",
        ));
    }
    let rules = match &req.rule {
        Some(yaml) => {
            let r = validate_rule(yaml.as_bytes(), Some(&state.workflow_names()))
                .map_err(|d| invalid_definition("rule", &d))?;
            BTreeMap::from([(r.name.clone(), r)])
        }
        None => (*state.alerts.rules.get()).clone(),
    };
    let mut alerts = Vec::new();
    let mut errors = Vec::new();
    for (i, a) in req.alerts.iter().enumerate() {
        let source = a.source.clone().unwrap_or_else(|| "webhook".into());
        if !crate::alerts::SOURCES.contains(&source.as_str()) {
            errors.push(Violation {
                pointer: format!("/alerts/{i}/source"),
                message: format!("must be one of {}", crate::alerts::SOURCES.join(", ")),
            });
        }
        let status = match a.status.as_deref().map(Status::parse) {
            None => Status::Firing,
            Some(Some(s)) => s,
            Some(None) => {
                errors.push(Violation {
                    pointer: format!("/alerts/{i}/status"),
                    message: "must be `firing` or `resolved`".into(),
                });
                Status::Firing
            }
        };
        alerts.push(Alert {
            fingerprint: a
                .fingerprint
                .clone()
                .unwrap_or_else(|| crate::alerts::fingerprint_of(&source, &a.labels)),
            source,
            status,
            severity: a
                .severity
                .clone()
                .or_else(|| a.labels.get("severity").cloned()),
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            starts_at: None,
            ends_at: None,
            tenant: a.tenant.clone(),
            raw: serde_json::Value::Null,
        });
    }
    if !errors.is_empty() {
        return Err(Problem::invalid("some alerts are not valid", errors));
    }
    if let Some(n) = req.stored {
        let rows = state
            .store
            .alerts_page(&AlertFilter::default(), None, n)
            .await?;
        alerts.extend(rows.into_iter().rev().map(|r| r.alert));
    }
    let decisions = state
        .alerts
        .dry_run(&alerts, &rules, req.stored.is_some())
        .await?;
    Ok(Json(RuleTestResult { decisions }))
}
