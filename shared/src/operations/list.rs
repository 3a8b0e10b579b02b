//! `list`: a tenant's dead, failed or stuck events through the status index, newest first,
//! page by page. `stuck` lists `received`, then `enqueued`, then `processing`.

use serde::{Deserialize, Serialize};

use super::{OperationError, Operations, event_ref, parse_tenant};
use crate::{
    clock::{Clock, unix_millis},
    ports::{DeadLetterQueue, EventQueue, EventSummary, OperationsStore, TenantNames},
    record::EventStatus,
};

/// `{"action": "list", "tenant": "acme", "status": "dead", "limit": 20, "next_token": null}`;
/// `status` is any status, or `stuck`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    pub tenant: String,
    #[serde(default = "dead")]
    pub status: String,
    pub limit: Option<u32>,
    pub next_token: Option<String>,
}

fn dead() -> String {
    EventStatus::Dead.as_str().to_owned()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedEvent {
    pub id: String,
    pub event_id: String,
    pub provider: String,
    pub event_type: Option<String>,
    pub status: String,
    pub attempts: u32,
    pub retry_exhausted: bool,
    pub last_error: Option<String>,
    /// Unix milliseconds.
    pub received_at: i64,
}

impl From<EventSummary> for ListedEvent {
    fn from(s: EventSummary) -> Self {
        Self {
            id: event_ref(&s.key),
            event_id: s.key.event_id.to_string(),
            provider: s.key.provider.to_string(),
            event_type: s.event_type,
            status: s.status.to_string(),
            attempts: s.attempts,
            retry_exhausted: s.retry_exhausted,
            last_error: s.last_error,
            received_at: unix_millis(s.received_at),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ListSummary {
    pub action: &'static str,
    pub tenant: String,
    pub status: String,
    pub count: usize,
    pub events: Vec<ListedEvent>,
    /// Pass as `next_token` for the next page; `null` on the last one.
    pub next_token: Option<String>,
}

impl<S, Q, D, T, C> Operations<S, Q, D, T, C>
where
    S: OperationsStore,
    Q: EventQueue,
    D: DeadLetterQueue,
    T: TenantNames,
    C: Clock,
{
    pub async fn list(&self, args: ListArgs) -> Result<ListSummary, OperationError> {
        let tenant = parse_tenant(&args.tenant)?;
        let limit = self.limit(args.limit.or(Some(20)))?;
        let statuses: Vec<EventStatus> = if args.status == "stuck" {
            EventStatus::STUCK.to_vec()
        } else {
            vec![args.status.parse().map_err(|_| {
                OperationError::Invalid(format!(
                    "status: `{}` is not a status (or `stuck`)",
                    args.status
                ))
            })?]
        };
        // The token names the status it continues in: `<status>:<position>`.
        let (mut index, mut after) = match args.next_token.as_deref() {
            None => (0, None),
            Some(token) => {
                let bad =
                    || OperationError::Invalid("next_token: not a token of this listing".into());
                let (status, position) = token.split_once(':').ok_or_else(bad)?;
                let index = statuses
                    .iter()
                    .position(|s| s.as_str() == status)
                    .ok_or_else(bad)?;
                (index, Some(position.to_owned()))
            }
        };
        let mut summary = ListSummary {
            action: "list",
            tenant: tenant.to_string(),
            status: args.status.clone(),
            ..ListSummary::default()
        };
        while let Some(&status) = statuses.get(index) {
            let room = limit - u32::try_from(summary.events.len()).unwrap_or(limit);
            if room == 0 {
                summary.next_token = Some(format!("{status}:"));
                break;
            }
            let page = self
                .store
                .page_by_status(
                    &tenant,
                    status,
                    room,
                    after.as_deref().filter(|a| !a.is_empty()),
                )
                .await
                .map_err(|e| match e {
                    crate::ports::StoreError::Malformed(_) if after.is_some() => {
                        OperationError::Invalid("next_token: not a token of this listing".into())
                    }
                    other => other.into(),
                })?;
            summary
                .events
                .extend(page.events.into_iter().map(ListedEvent::from));
            if let Some(next) = page.next {
                summary.next_token = Some(format!("{status}:{next}"));
                break;
            }
            index += 1;
            after = None;
        }
        summary.count = summary.events.len();
        Ok(summary)
    }
}
