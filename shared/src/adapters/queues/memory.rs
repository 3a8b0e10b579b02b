//! The queues in memory, for fast unit tests: each keeps what it was asked to do, and can be
//! told to fail.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;

use crate::{
    adapters::{Outage, lock},
    message::QueueMessage,
    ports::{DeadLetter, DeadLetterQueue, EventQueue, QueueError, RetryQueue},
};

/// What the processor asked of its queue.
#[derive(Debug, Default)]
pub struct MemoryRetryQueue {
    delays: Mutex<Vec<(String, Duration)>>,
    dead_letters: Mutex<Vec<String>>,
    outage: Outage,
    dead_letter_outage: Outage,
}

impl MemoryRetryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_unavailable(&self, down: bool) {
        self.outage.set(down);
    }

    /// Make only sends to the dead-letter queue fail (`true`).
    pub fn set_dead_letters_failing(&self, failing: bool) {
        self.dead_letter_outage.set(failing);
    }

    /// (receipt handle, delay) per retry asked for.
    pub fn delays(&self) -> Vec<(String, Duration)> {
        lock(&self.delays).clone()
    }

    /// Bodies sent straight to the dead-letter queue.
    pub fn dead_letters(&self) -> Vec<String> {
        lock(&self.dead_letters).clone()
    }
}

#[async_trait]
impl RetryQueue for MemoryRetryQueue {
    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        self.outage.check().map_err(QueueError)?;
        lock(&self.delays).push((receipt_handle.to_owned(), delay));
        Ok(())
    }

    async fn dead_letter(&self, body: &str) -> Result<(), QueueError> {
        self.outage.check().map_err(QueueError)?;
        self.dead_letter_outage.check().map_err(QueueError)?;
        lock(&self.dead_letters).push(body.to_owned());
        Ok(())
    }
}

/// A queue that keeps what it was sent.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    sent: Mutex<Vec<QueueMessage>>,
    outage: Outage,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_unavailable(&self, down: bool) {
        self.outage.set(down);
    }

    /// Every message sent so far, oldest first.
    pub fn sent(&self) -> Vec<QueueMessage> {
        lock(&self.sent).clone()
    }
}

#[async_trait]
impl EventQueue for MemoryQueue {
    async fn send(&self, message: &QueueMessage) -> Result<(), QueueError> {
        self.outage.check().map_err(QueueError)?;
        lock(&self.sent).push(message.clone());
        Ok(())
    }
}

/// A dead-letter queue: visible messages, and received ones held until deleted or released.
#[derive(Debug, Default)]
pub struct MemoryDeadLetterQueue {
    visible: Mutex<VecDeque<DeadLetter>>,
    held: Mutex<HashMap<String, DeadLetter>>,
    counter: AtomicUsize,
    outage: Outage,
}

impl MemoryDeadLetterQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_unavailable(&self, down: bool) {
        self.outage.set(down);
    }

    /// Put a body on the queue, as a redrive or the processor would.
    pub fn push(&self, body: impl Into<String>) {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        lock(&self.visible).push_back(DeadLetter {
            message_id: format!("dlq-{n}"),
            receipt_handle: String::new(),
            body: body.into(),
        });
    }

    /// Bodies visible now, oldest first.
    pub fn visible(&self) -> Vec<String> {
        lock(&self.visible).iter().map(|m| m.body.clone()).collect()
    }

    /// How many received messages are neither deleted nor released.
    pub fn held(&self) -> usize {
        lock(&self.held).len()
    }
}

#[async_trait]
impl DeadLetterQueue for MemoryDeadLetterQueue {
    async fn receive(&self, max: u32, _hold: Duration) -> Result<Vec<DeadLetter>, QueueError> {
        self.outage.check().map_err(QueueError)?;
        let mut visible = lock(&self.visible);
        let mut held = lock(&self.held);
        let mut out = Vec::new();
        while out.len() < usize::try_from(max.min(10)).unwrap_or(10) {
            let Some(mut message) = visible.pop_front() else {
                break;
            };
            let n = self.counter.fetch_add(1, Ordering::SeqCst);
            message.receipt_handle = format!("receipt-{n}");
            held.insert(message.receipt_handle.clone(), message.clone());
            out.push(message);
        }
        Ok(out)
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.outage.check().map_err(QueueError)?;
        lock(&self.held).remove(receipt_handle);
        Ok(())
    }

    async fn send(&self, body: &str) -> Result<(), QueueError> {
        self.outage.check().map_err(QueueError)?;
        self.push(body);
        Ok(())
    }

    async fn release(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.outage.check().map_err(QueueError)?;
        if let Some(message) = lock(&self.held).remove(receipt_handle) {
            lock(&self.visible).push_back(message);
        }
        Ok(())
    }

    async fn depth(&self) -> Result<u64, QueueError> {
        self.outage.check().map_err(QueueError)?;
        Ok((lock(&self.visible).len() + lock(&self.held).len()) as u64)
    }
}
