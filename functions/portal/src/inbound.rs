//! What operator sessions see of the inbound side: the tenant's received events by status, one
//! event's record, replaying events, the health report and the DLQ redrive. Behind a trait, so the portal holds
//! the replay function's operations (as deployed) or memory ones (in tests) alike.

use async_trait::async_trait;
use shared::{
    clock::Clock,
    ids::{EventId, TenantId},
    operations::{
        Operations,
        health::{HealthArgs, HealthSummary},
        list::{ListArgs, ListSummary},
        redrive::{RedriveArgs, RedriveSummary},
        targeted::{ReplayArgs, ReplaySummary},
    },
    ports::{DeadLetterQueue, EventQueue, OperationsStore, TenantNames},
    provider::Provider,
    record::{EventKey, EventRecord},
};

/// The most events one *Replay these* queues: one page of the list.
pub const MAX_REPLAYED: u32 = 25;

/// The operator pages' use cases, always for one tenant.
#[async_trait]
pub trait Inbound: Send + Sync + std::fmt::Debug {
    async fn list(
        &self,
        tenant: &TenantId,
        status: &str,
        next: Option<String>,
    ) -> Result<ListSummary, String>;
    async fn record(
        &self,
        tenant: &TenantId,
        provider: Provider,
        id: &EventId,
    ) -> Result<Option<EventRecord>, String>;
    async fn health(&self, tenant: &TenantId) -> Result<HealthSummary, String>;
    /// Events of one provider re-enqueued from their records (the replay function's targeted
    /// `replay`), or in a dry run checked: what would go, what would not and why.
    async fn replay(
        &self,
        tenant: &TenantId,
        provider: Provider,
        ids: &[EventId],
        dry_run: bool,
        note: &str,
    ) -> Result<ReplaySummary, String>;
    /// The tenant's DLQ messages redriven, or in a dry run counted.
    async fn redrive(
        &self,
        tenant: &TenantId,
        dry_run: bool,
        note: &str,
    ) -> Result<RedriveSummary, String>;
}

#[async_trait]
impl<S, Q, D, T, C> Inbound for Operations<S, Q, D, T, C>
where
    S: OperationsStore + std::fmt::Debug,
    Q: EventQueue + std::fmt::Debug,
    D: DeadLetterQueue + std::fmt::Debug,
    T: TenantNames + std::fmt::Debug,
    C: Clock,
{
    async fn list(
        &self,
        tenant: &TenantId,
        status: &str,
        next: Option<String>,
    ) -> Result<ListSummary, String> {
        Operations::list(
            self,
            ListArgs {
                tenant: tenant.as_str().to_owned(),
                status: status.to_owned(),
                limit: Some(25),
                next_token: next,
            },
        )
        .await
        .map_err(|e| e.to_string())
    }

    async fn record(
        &self,
        tenant: &TenantId,
        provider: Provider,
        id: &EventId,
    ) -> Result<Option<EventRecord>, String> {
        let key = EventKey {
            tenant: tenant.clone(),
            provider,
            event_id: id.clone(),
        };
        self.store.get(&key).await.map_err(|e| e.to_string())
    }

    async fn health(&self, tenant: &TenantId) -> Result<HealthSummary, String> {
        Operations::health(
            self,
            HealthArgs {
                tenant: Some(tenant.as_str().to_owned()),
                window_secs: Some(3_600),
                thresholds: Default::default(),
                max_records: None,
            },
        )
        .await
        .map_err(|e| e.to_string())
    }

    async fn replay(
        &self,
        tenant: &TenantId,
        provider: Provider,
        ids: &[EventId],
        dry_run: bool,
        note: &str,
    ) -> Result<ReplaySummary, String> {
        Operations::replay(
            self,
            ReplayArgs {
                tenant: tenant.as_str().to_owned(),
                provider: provider.as_str().to_owned(),
                ids: ids.iter().map(|id| id.as_str().to_owned()).collect(),
                force: false,
                dry_run,
                limit: Some(MAX_REPLAYED),
                note: Some(note.to_owned()),
            },
        )
        .await
        .map_err(|e| e.to_string())
    }

    async fn redrive(
        &self,
        tenant: &TenantId,
        dry_run: bool,
        note: &str,
    ) -> Result<RedriveSummary, String> {
        Operations::redrive(
            self,
            RedriveArgs {
                dry_run,
                limit: Some(100),
                note: Some(note.to_owned()),
                tenant: Some(tenant.as_str().to_owned()),
                provider: None,
                event_type: None,
            },
        )
        .await
        .map_err(|e| e.to_string())
    }
}
