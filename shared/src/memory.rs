//! The in-memory adapters of every port, for fast unit tests of the use cases (they live beside
//! their AWS siblings under [`crate::adapters`]). Each can be told to fail, to exercise the
//! outage paths. Compiled only for tests: `cfg(test)` here, the `test-util` feature elsewhere.

pub use crate::adapters::{
    events::MemoryEventStore,
    faults::{Fault, FaultPlan, Faulty, When},
    outbound::{MemoryDeliveryQueue, MemoryOutboundStore, ScriptedTransport},
    portal::{HmacLinkSigner, MemoryPortalStore},
    queues::{MemoryDeadLetterQueue, MemoryQueue, MemoryRetryQueue},
    tenants::MemoryDirectory,
};
