//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    admin, alerts, approvals, catalog, cluster, control, events, grants, health, incident_views,
    incidents, oncall, oncall_files, plugins, problem, reports, requests, rules, run_list, runs,
    secrets, silences, start, status, steps, views, workflows,
};

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from `csmp token create` or `POST /v1/tokens`",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every `/v1` call may be answered 429 when its token is past `--rate-limit`.
struct RateLimited;

impl Modify for RateLimited {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::header::Header;
        use utoipa::openapi::{Content, Object, Ref, ResponseBuilder, Type};
        let response = ResponseBuilder::new()
            .description("This token made more calls than `--rate-limit` allows; retry after `Retry-After` seconds")
            .content(
                problem::PROBLEM_JSON,
                Content::new(Some(Ref::from_schema_name("Problem"))),
            )
            .header("Retry-After", Header::new(Object::with_type(Type::Integer)))
            .build();
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                op.responses
                    .responses
                    .entry("429".into())
                    .or_insert_with(|| response.clone().into());
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "csmp",
        description = "Durable workflows for cloud operations: the service catalog, requests, runs, workflows, plugins, events, incidents and administration. Errors are RFC 9457 problem documents.",
        license(name = "Apache-2.0"),
    ),
    paths(
        catalog::list, catalog::get_one, catalog::put, catalog::delete,
        requests::create, requests::list, requests::get_one, requests::decide,
        run_list::list, start::create, approvals::list, runs::get_one, runs::cancel, control::retry, control::rerun, control::pause, control::resume, runs::approve, runs::signal, runs::events,
        steps::get_one,
        workflows::list, workflows::versions, workflows::get_version, workflows::upload, workflows::delete,
        plugins::list, plugins::get_one, plugins::upload, grants::get, grants::reload,
        events::receive, events::enqueue, events::list, alerts::list,
        rules::list, rules::get_one, rules::put, rules::delete, rules::test,
        silences::create, silences::list, silences::delete, oncall::list, oncall::who,
        oncall_files::list, oncall_files::put, oncall_files::delete,
        incidents::list, incidents::get_one, incidents::timeline_of, incidents::acknowledge,
        incidents::resolve, incidents::note, incidents::reopen, incidents::edit, incidents::review,
        reports::incidents, reports::sla, reports::slo, status::json, status::html,
        admin::create_token, admin::list_tokens, admin::revoke_token, admin::list_tenants,
        admin::get_tenant, admin::put_tenant, admin::audit, cluster::get, secrets::list, secrets::put,
        health::healthz, health::readyz, health::metrics, serve,
    ),
    components(schemas(
        problem::Problem, problem::Violation, problem::Located,
        views::CatalogEntryView, views::CatalogList, views::RequestBody, views::RequestList,
        views::RequestStatus, views::ApprovalView, views::SlaView, views::RunSummary,
        views::RunDetail, views::RetryView, views::RunList, views::RunStreamEvent, views::RunStatusView, views::StepView,
        incident_views::IncidentView, incident_views::IncidentList, incident_views::TimelineEntry,
        incident_views::Timeline, incident_views::Ticket, crate::incidents::Edit,
        crate::incidents::ActionItem, crate::incidents::review::Review,
        crate::incidents::review::Overview, crate::incidents::review::Impact,
        crate::incidents::review::ReviewEntry, crate::incidents::review::Responders,
        reports::IncidentReport, reports::SlaReport, crate::slo::report::Row,
        crate::slo::Objective, crate::slo::Budget, crate::slo::BurnRule, reports::ObjectiveReport,
        reports::Burning, reports::ObjectiveList, status::StatusPage, status::ServiceStatus, status::CheckStatus,
        status::IncidentStatus, status::Maintenance, status::Uptime,
        crate::incidents::measures::Report,
        crate::incidents::measures::Measures, crate::incidents::measures::Durations,
        views::EventView, views::EventList, views::AuditView, views::AuditList,
        views::TokenView, views::TokenList, views::CreatedToken, views::TenantView,
        views::TenantList, views::PluginView, views::PluginList, views::PluginUploaded,
        views::CapabilitiesView, views::WorkflowSummary, views::WorkflowList,
        views::WorkflowVersion, views::WorkflowVersions, views::WorkflowUploaded,
        requests::Order, requests::Decision, start::StartRun, control::RerunFrom, approvals::Waiting, approvals::WaitingList, runs::StepDecision, runs::CancelOptions,
        steps::StepDetail, steps::AttemptView, incidents::Note,
        admin::NewTokenBody, admin::TenantBody, events::Received, events::Enqueued,
        cluster::ClusterView, cluster::MemberView,
        crate::alerts::dispatch::Decision, crate::alerts::dispatch::RuleDecision,
        alerts::AlertList, alerts::AlertView, alerts::AlertLinkView,
        rules::RuleView, rules::RuleList, rules::RuleTest, rules::TestAlert, rules::RuleTestResult,
        silences::NewSilence, silences::SilenceView, silences::SilenceList,
        oncall::PersonView, oncall::ContactView, oncall::OnCallList, oncall::OnCallNow,
        oncall_files::OnCallFileView, oncall_files::OnCallFileList,
        grants::GrantView, grants::PluginDetail, grants::GrantsView, grants::GrantChangeView,
        grants::GrantsReloaded, secrets::SecretBody, secrets::SecretView, secrets::SecretList,
    )),
    modifiers(&Bearer, &RateLimited),
    tags(
        (name = "catalog", description = "What clients may order"),
        (name = "requests", description = "Orders of catalog entries"),
        (name = "runs", description = "Workflow runs"),
        (name = "workflows", description = "Workflow definitions"),
        (name = "plugins", description = "Step plugins"),
        (name = "events", description = "Alerts in"),
        (name = "alerts", description = "Alerts, rules and silences"),
        (name = "oncall", description = "People, teams and on-call schedules"),
        (name = "reports", description = "Incident response measures, SLA and service levels"),
        (name = "status", description = "The status page: services, their checks' uptime, open incidents, maintenance"),
        (name = "incidents", description = "Incidents"),
        (name = "admin", description = "Tokens, tenants, plugin grants, audit log"),
        (name = "health", description = "Liveness, readiness, metrics"),
    ),
)]
struct ApiDoc;

/// The OpenAPI document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// This document (OpenAPI 3.1).
#[utoipa::path(get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
#[allow(clippy::unused_async)]
pub(super) async fn serve() -> Response {
    axum::Json(document()).into_response()
}
