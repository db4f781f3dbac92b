//! Attribute macros `#[task]` and `#[workflow]` for the Coflux-rs Rust SDK. Use them through
//! `coflux_core::sdk::{task, workflow}`: the generated code refers to `::coflux_core`.

mod expand;
mod options;

use proc_macro::TokenStream;

use expand::Kind;

/// Declares a Coflux **task**: a step within a run, called from a workflow or another task.
///
/// ```ignore
/// use coflux_core::sdk::{task, Failure};
///
/// /// Greets someone (this doc comment is the target's instruction).
/// #[task(retries = 2, cache(params = ["name"], max_age_ms = 3_600_000))]
/// pub async fn greet(name: String, excited: bool) -> Result<String, Failure> {
///     Ok(format!("Hello, {name}{}", if excited { "!" } else { "." }))
/// }
///
/// // In a workflow or task:
/// let greeting = greet.call("Ada".into(), true).await?;
/// // Fan-out:
/// let handles: Vec<_> = names.into_iter().map(|n| greet.submit(n, false)).collect();
/// // Directly, without the orchestrator:
/// let greeting = greet::run("Ada".into(), true).await?;
/// ```
#[doc = include_str!("target.md")]
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Kind::Task, attr.into(), item.into()).into()
}

/// Declares a Coflux **workflow**: the entry point of a run, submitted by users; it calls tasks
/// (and other workflows) as child steps.
///
/// It takes the same function shape and options as [`macro@task`], and generates the same
/// items; only the target's kind differs.
///
/// ```ignore
/// use coflux_core::sdk::{task, workflow, Failure};
///
/// #[task]
/// async fn greet(name: String) -> Result<String, Failure> {
///     Ok(format!("Hello, {name}!"))
/// }
///
/// /// Greets everyone, three at a time.
/// #[workflow(requires(region = ["eu", "us"]))]
/// pub async fn hello(names: Vec<String>) -> Result<Vec<String>, Failure> {
///     let handles: Vec<_> = names.into_iter().map(|n| greet.submit(n)).collect();
///     let mut greetings = Vec::new();
///     for handle in handles {
///         greetings.push(handle.result().await?);
///     }
///     Ok(greetings)
/// }
/// ```
#[doc = include_str!("target.md")]
#[proc_macro_attribute]
pub fn workflow(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Kind::Workflow, attr.into(), item.into()).into()
}
