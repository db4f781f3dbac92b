//! A run of exactly `n` steps for the UI's scale checks: `tree(n)` calls `node(1..=3, n)`,
//! and `node(i, n)` calls `node(3i+1..=3i+3, n)` below `n` (a ternary tree: nothing groups).

use coflux_core::sdk::{Failure, task, workflow};

/// The root of a ternary tree of `n` steps; returns how many steps it has.
#[workflow(module = "tree")]
pub async fn tree(n: u32) -> Result<u32, Failure> {
    children(0, n).await
}

/// One inner step of [`tree`]: itself plus its subtree's size.
#[task(module = "tree")]
pub async fn node(i: u32, n: u32) -> Result<u32, Failure> {
    children(i, n).await
}

async fn children(i: u32, n: u32) -> Result<u32, Failure> {
    let handles: Vec<_> = (3 * i + 1..=3 * i + 3)
        .filter(|c| *c < n)
        .map(|c| node.submit(c, n))
        .collect();
    let mut total = 1;
    for handle in handles {
        total += handle.result().await?;
    }
    Ok(total)
}
