//! Replay: operator actions from console test events. Arrives with the replay issue.

fn main() {}
