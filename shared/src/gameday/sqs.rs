//! A model of the events queue and its DLQ as SQS behaves, on the injected clock: at-least-once
//! delivery, a visibility timeout, `ChangeMessageVisibility`, a redrive to the DLQ once a
//! message's receives reach `maxReceiveCount`, and deletes that can be lost (then the message
//! comes back: SQS's duplicate delivery).

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use async_trait::async_trait;

use crate::{
    adapters::{faults::chance, lock},
    clock::{Clock, ManualClock},
    message::QueueMessage,
    ports::{DeadLetter, DeadLetterQueue, EventQueue, QueueError, RetryQueue},
    processor::Message,
};

/// The template's events queue visibility timeout.
pub const VISIBILITY: Duration = Duration::from_secs(180);

#[derive(Debug)]
struct Queued {
    body: String,
    receives: u32,
    visible_at: SystemTime,
    receipt: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    queue: BTreeMap<u64, Queued>,
    receipts: HashMap<String, u64>,
    dlq: VecDeque<(u64, String)>,
    /// Received from the DLQ and not yet deleted: visible again once their hold ends.
    dlq_held: HashMap<String, (u64, String, SystemTime)>,
    deletes: u64,
    duplicates: u64,
    redriven_to_dlq: u64,
}

/// The events queue and its DLQ.
#[derive(Debug)]
pub struct SqsModel {
    clock: Arc<ManualClock>,
    max_receives: u32,
    /// The share of deletes SQS "loses", so the message is delivered again.
    duplicate_rate: f64,
    seed: u64,
    state: Mutex<State>,
}

impl SqsModel {
    pub fn new(clock: Arc<ManualClock>, max_receives: u32) -> Self {
        Self {
            clock,
            max_receives,
            duplicate_rate: 0.0,
            seed: 0,
            state: Mutex::default(),
        }
    }

    /// Deliver this share of deleted messages again (decided by `seed`).
    pub fn with_duplicates(mut self, rate: f64, seed: u64) -> Self {
        self.duplicate_rate = rate;
        self.seed = seed;
        self
    }

    /// Up to `max` visible messages, as the event source mapping receives them. A message
    /// whose receives reached `maxReceiveCount` moves to the DLQ instead.
    pub fn receive(&self, max: usize) -> Vec<Message> {
        let now = self.clock.now();
        let mut state = lock(&self.state);
        let visible: Vec<u64> = state
            .queue
            .iter()
            .filter(|(_, m)| m.visible_at <= now)
            .map(|(id, _)| *id)
            .take(max)
            .collect();
        let mut batch = Vec::new();
        for id in visible {
            let Some(mut message) = state.queue.remove(&id) else {
                continue;
            };
            if let Some(old) = message.receipt.take() {
                state.receipts.remove(&old);
            }
            if message.receives >= self.max_receives {
                state.dlq.push_back((id, message.body));
                state.redriven_to_dlq += 1;
                continue;
            }
            message.receives += 1;
            let receipt = format!("{id}#{}", message.receives);
            message.receipt = Some(receipt.clone());
            message.visible_at = now + VISIBILITY;
            batch.push(Message {
                message_id: format!("m-{id}"),
                receipt_handle: Some(receipt.clone()),
                body: message.body.clone(),
                receive_count: message.receives,
                sent_at: None,
            });
            state.receipts.insert(receipt, id);
            state.queue.insert(id, message);
        }
        batch
    }

    /// Delete a handled message (the event source mapping does, for every message not
    /// reported failed); some deletes are lost and the message comes back.
    pub fn delete(&self, receipt: &str) {
        let mut state = lock(&self.state);
        let Some(id) = state.receipts.remove(receipt) else {
            return;
        };
        state.deletes += 1;
        let lost = chance((self.seed, receipt)) < self.duplicate_rate;
        if lost {
            state.duplicates += 1;
            if let Some(message) = state.queue.get_mut(&id) {
                message.receipt = None;
            }
        } else {
            state.queue.remove(&id);
        }
    }

    /// When the next message becomes visible, if any is queued.
    pub fn next_visible(&self) -> Option<SystemTime> {
        lock(&self.state).queue.values().map(|m| m.visible_at).min()
    }

    pub fn depth(&self) -> usize {
        lock(&self.state).queue.len()
    }

    /// Every message on the DLQ, visible or held by a receive.
    pub fn dlq_bodies(&self) -> Vec<String> {
        let state = lock(&self.state);
        state
            .dlq
            .iter()
            .map(|(_, body)| body.clone())
            .chain(state.dlq_held.values().map(|(_, body, _)| body.clone()))
            .collect()
    }

    /// (deletes, deliveries duplicated by a lost delete, messages redriven to the DLQ).
    pub fn counts(&self) -> (u64, u64, u64) {
        let state = lock(&self.state);
        (state.deletes, state.duplicates, state.redriven_to_dlq)
    }

    fn enqueue(&self, body: String) {
        let now = self.clock.now();
        let mut state = lock(&self.state);
        state.next_id += 1;
        let id = state.next_id;
        state.queue.insert(
            id,
            Queued {
                body,
                receives: 0,
                visible_at: now,
                receipt: None,
            },
        );
    }
}

#[async_trait]
impl EventQueue for SqsModel {
    async fn send(&self, message: &QueueMessage) -> Result<(), QueueError> {
        let body = serde_json::to_string(message).map_err(|e| QueueError(e.to_string()))?;
        self.enqueue(body);
        Ok(())
    }
}

#[async_trait]
impl RetryQueue for SqsModel {
    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        let now = self.clock.now();
        let mut state = lock(&self.state);
        let Some(id) = state.receipts.get(receipt_handle).copied() else {
            return Err(QueueError("receipt handle is not current".into()));
        };
        if let Some(message) = state.queue.get_mut(&id) {
            message.visible_at = now + delay;
        }
        Ok(())
    }

    async fn dead_letter(&self, body: &str) -> Result<(), QueueError> {
        let mut state = lock(&self.state);
        state.next_id += 1;
        let id = state.next_id;
        state.dlq.push_back((id, body.to_owned()));
        Ok(())
    }
}

#[async_trait]
impl DeadLetterQueue for SqsModel {
    async fn receive(&self, max: u32, hold: Duration) -> Result<Vec<DeadLetter>, QueueError> {
        let now = self.clock.now();
        let mut state = lock(&self.state);
        let expired: Vec<String> = state
            .dlq_held
            .iter()
            .filter(|(_, (_, _, until))| *until <= now)
            .map(|(receipt, _)| receipt.clone())
            .collect();
        for receipt in expired {
            if let Some((id, body, _)) = state.dlq_held.remove(&receipt) {
                state.dlq.push_back((id, body));
            }
        }
        let take = state.dlq.len().min(max as usize);
        let received: Vec<_> = state.dlq.drain(..take).collect();
        Ok(received
            .into_iter()
            .map(|(id, body)| {
                let receipt = format!("dlq-{id}");
                state
                    .dlq_held
                    .insert(receipt.clone(), (id, body.clone(), now + hold));
                DeadLetter {
                    message_id: format!("d-{id}"),
                    receipt_handle: receipt,
                    body,
                }
            })
            .collect())
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        lock(&self.state).dlq_held.remove(receipt_handle);
        Ok(())
    }

    async fn send(&self, body: &str) -> Result<(), QueueError> {
        self.dead_letter(body).await
    }

    async fn release(&self, receipt_handle: &str) -> Result<(), QueueError> {
        let mut state = lock(&self.state);
        if let Some((id, body, _)) = state.dlq_held.remove(receipt_handle) {
            state.dlq.push_back((id, body));
        }
        Ok(())
    }

    async fn depth(&self) -> Result<u64, QueueError> {
        let state = lock(&self.state);
        Ok((state.dlq.len() + state.dlq_held.len()) as u64)
    }
}
