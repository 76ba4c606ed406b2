//! CloudWatch alarms through an SNS HTTP(S) subscription (`POST /v1/events/cloudwatch`): the
//! envelope checked and its signature verified (`alerts::sns`), a `SubscriptionConfirmation`
//! answered for allowed topics, each `MessageId` taken once, the alarm in `Message` mapped
//! (`alerts::intake::cloudwatch`).

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde_json::{Value as Json_, json};

use super::AppState;
use super::audit::Audit;
use super::auth::Principal;
use super::events::take;
use super::problem::{Problem, Violation};
use crate::alerts::sns::{self, Kind, SnsError, Verification};
use crate::diag::plural;

fn refused(e: &SnsError) -> Problem {
    match e {
        SnsError::CertFetch(_) => Problem::unavailable(e.to_string()),
        _ => Problem::forbidden(e.to_string()),
    }
}

/// Handles one SNS message.
pub(super) async fn receive(
    state: &AppState,
    who: &Principal,
    audit: &Audit,
    headers: &HeaderMap,
    payload: Json_,
) -> Result<Response, Problem> {
    let env = sns::parse(&payload).map_err(|errors| {
        Problem::invalid(
            format!(
                "this is not an SNS message ({} problem{})",
                errors.len(),
                plural(errors.len())
            ),
            errors
                .into_iter()
                .map(|(pointer, message)| Violation { pointer, message })
                .collect(),
        )
    })?;
    if let Some(t) = headers
        .get("x-amz-sns-message-type")
        .and_then(|v| v.to_str().ok())
        && t != env.kind.as_str()
    {
        return Err(Problem::invalid_at(
            "/Type",
            format!(
                "the message says `{}` but its x-amz-sns-message-type header says `{t}`",
                env.kind
            ),
        ));
    }
    let verifier = std::sync::Arc::clone(&state.sns);
    let now = state.now_ms() / 1000;
    let checked = env.clone();
    let kind = env.kind;
    let verdict = tokio::task::spawn_blocking(move || match kind {
        Kind::SubscriptionConfirmation => sns::confirm(&verifier, &checked, now),
        _ => verifier.check(&checked, now),
    })
    .await
    .map_err(|e| Problem::internal(format!("the SNS check stopped: {e}")))?;
    let verification = verdict.map_err(|e| {
        tracing::warn!(topic = %env.topic_arn, message = %env.message_id, "SNS message refused: {e}");
        refused(&e)
    })?;
    if verification == Verification::Unverified {
        tracing::warn!(topic = %env.topic_arn, message = %env.message_id, "SNS message accepted WITHOUT signature verification: its topic is listed with --sns-unverified-topic");
    }
    match env.kind {
        Kind::SubscriptionConfirmation => {
            tracing::info!(topic = %env.topic_arn, "SNS subscription confirmed");
            return Ok(
                (StatusCode::OK, Json(json!({ "confirmed": env.topic_arn }))).into_response(),
            );
        }
        Kind::UnsubscribeConfirmation => {
            tracing::warn!(topic = %env.topic_arn, "SNS says this endpoint was unsubscribed from the topic");
            return Ok((
                StatusCode::OK,
                Json(json!({ "unsubscribed": env.topic_arn })),
            )
                .into_response());
        }
        Kind::Notification => {}
    }
    if state.store.sns_message_seen(&env.message_id).await? {
        return Ok((StatusCode::OK, Json(json!({ "duplicate": env.message_id }))).into_response());
    }
    let message: Json_ = serde_json::from_str(&env.message).map_err(|e| {
        Problem::invalid_at(
            "/Message",
            format!("must be a CloudWatch alarm as JSON text: {e}"),
        )
    })?;
    let alert = crate::alerts::intake::cloudwatch(&message).map_err(|errors| {
        Problem::invalid(
            format!(
                "this is not a CloudWatch alarm ({} problem{})",
                errors.len(),
                plural(errors.len())
            ),
            errors
                .into_iter()
                .map(|(pointer, message)| Violation { pointer, message })
                .collect(),
        )
    })?;
    let mut stored = payload;
    if let Json_::Object(m) = &mut stored {
        m.insert("Message".into(), message);
    }
    match take(
        state,
        who,
        audit,
        "cloudwatch",
        stored,
        alert.into_iter().collect(),
        Some(env.message_id.clone()),
    )
    .await?
    {
        Some(received) => Ok((StatusCode::ACCEPTED, Json(received)).into_response()),
        None => Ok((StatusCode::OK, Json(json!({ "duplicate": env.message_id }))).into_response()),
    }
}
