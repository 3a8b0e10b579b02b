//! Processor: consumes SQS batches and applies events exactly once. Arrives with the processor issue.

fn main() {}
