//! `#[task]` and `#[workflow]`: the generated definitions, and running targets outside an
//! orchestrator (directly, through `Target::invoke`, and through `call`/`submit`).

use std::collections::BTreeMap;
use std::fmt;

use coflux_core::model::{
    CacheConfig, DeferConfig, ParamSelection, Parameter, RetryPolicy, StepOptions, TargetKind,
    TargetRef, Value,
};
use coflux_core::sdk::{ExecutionError, Failure, Repository, Target, encode_arg, task, workflow};
use futures::executor::block_on;

#[derive(Debug, Clone, PartialEq)]
struct Grumpy(String);

impl fmt::Display for Grumpy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no greeting for {}", self.0)
    }
}

impl std::error::Error for Grumpy {}

/// Greets someone, `n` times.
///
/// Refuses to greet "Oscar".
#[task]
async fn greet(name: String, n: u32) -> Result<String, Grumpy> {
    if name == "Oscar" {
        return Err(Grumpy(name));
    }
    Ok(vec![format!("Hello, {name}!"); n as usize].join(" "))
}

/// Greets a few people, through child steps.
#[workflow]
pub async fn hello(names: Vec<String>) -> Result<Vec<String>, Failure> {
    let first = match names.first() {
        Some(name) => greet.call(name.clone(), 1).await?,
        None => return Ok(Vec::new()),
    };
    let handles: Vec<_> = names
        .into_iter()
        .skip(1)
        .map(|name| greet.submit(name, 2))
        .collect();
    let mut greetings = vec![first];
    for handle in handles {
        greetings.push(handle.result().await?);
    }
    Ok(greetings)
}

#[task(
    name = "fetch",
    module = "app.io",
    retries(limit = 5, backoff_min_ms = 100, backoff_max_ms = 2_000),
    cache(params = ["url", 2], max_age_ms = 60000, namespace = "http", version = "2"),
    memo(params = ["url"]),
    defer(params = [1]),
    delay_ms = 500,
    timeout_ms = 10_000,
    requires(gpu = true, region = ["eu", "us"], tier = "gold"),
    wait_for = ["upstream"],
)]
pub(crate) async fn fetch_task(
    url: String,
    upstream: Option<u64>,
    r#type: String,
) -> Result<usize, Failure> {
    Ok(url.len() + upstream.unwrap_or(0) as usize + r#type.len())
}

#[task(retries = 3, cache, memo, defer, recurrent)]
async fn flags() -> Result<(), Failure> {
    Ok(())
}

#[workflow(
    retries = true,
    cache = true,
    memo = true,
    defer = true,
    recurrent = true
)]
async fn flags_explicit() -> Result<(), Failure> {
    Ok(())
}

#[task(
    retries = false,
    cache = false,
    memo = false,
    defer = false,
    recurrent = false
)]
async fn flags_off() -> Result<(), Failure> {
    Ok(())
}

#[task(
    retries(backoff_min_ms = 250),
    cache(params = false),
    memo(params = true),
    wait_for = 0
)]
async fn partial(mut count: u32) -> std::io::Result<u32> {
    count += 1;
    Ok(count)
}

#[task(cache(max_age_ms = 1000), retries(limit = 2))]
async fn r#match(
    items: std::collections::HashMap<String, Vec<Option<u8>>>,
    pair: (u32, String),
) -> Result<usize, Failure> {
    Ok(items.len() + pair.1.len())
}

mod inner {
    use coflux_core::sdk::{Failure, task};

    /// Doubles.
    #[task]
    pub async fn double(x: i64) -> Result<i64, Failure> {
        Ok(x * 2)
    }
}

mod reexport {
    pub use coflux_core as renamed;
}

/// Generated code reaches coflux-core through a re-export.
#[task(crate = "crate::reexport::renamed", name = "via_reexport")]
async fn reexported(x: u8) -> Result<u8, Failure> {
    Ok(x + 1)
}

fn parameter(name: &str, annotation: &str) -> Parameter {
    Parameter {
        name: name.into(),
        annotation: Some(annotation.into()),
        default: None,
    }
}

fn ok<T: serde::Serialize>(value: T) -> Value {
    encode_arg(&value).expect("encodable")
}

#[test]
fn definitions_default_to_the_function_and_module() {
    let definition = greet.definition();
    assert_eq!(definition.target, TargetRef::new("macros", "greet"));
    assert_eq!(definition.kind, TargetKind::Task);
    assert_eq!(
        definition.parameters,
        vec![parameter("name", "String"), parameter("n", "u32")]
    );
    assert_eq!(definition.options, StepOptions::default());
    assert_eq!(
        definition.instruction.as_deref(),
        Some("Greets someone, `n` times.\n\nRefuses to greet \"Oscar\".")
    );

    let definition = hello.definition();
    assert_eq!(definition.target, TargetRef::new("macros", "hello"));
    assert_eq!(definition.kind, TargetKind::Workflow);
    assert_eq!(
        definition.parameters,
        vec![parameter("names", "Vec<String>")]
    );
    assert_eq!(
        definition.instruction.as_deref(),
        Some("Greets a few people, through child steps.")
    );

    let definition = inner::double.definition();
    assert_eq!(definition.target, TargetRef::new("macros.inner", "double"));
    assert_eq!(definition.instruction.as_deref(), Some("Doubles."));

    let definition = flags.definition();
    assert!(definition.parameters.is_empty());
    assert_eq!(definition.instruction, None);
}

#[test]
fn all_options_map_onto_step_options() {
    let definition = fetch_task.definition();
    assert_eq!(definition.target, TargetRef::new("app.io", "fetch"));
    assert_eq!(
        definition.parameters,
        vec![
            parameter("url", "String"),
            parameter("upstream", "Option<u64>"),
            parameter("type", "String")
        ]
    );
    let expected = StepOptions {
        cache: Some(CacheConfig {
            params: ParamSelection::Indexes(vec![0, 2]),
            max_age_ms: Some(60_000),
            namespace: Some("http".into()),
            version: Some("2".into()),
        }),
        retries: Some(RetryPolicy {
            limit: Some(5),
            backoff_min_ms: 100,
            backoff_max_ms: 2_000,
        }),
        defer: Some(DeferConfig {
            params: ParamSelection::Indexes(vec![1]),
        }),
        memo: Some(ParamSelection::Indexes(vec![0])),
        delay_ms: Some(500),
        timeout_ms: Some(10_000),
        requires: BTreeMap::from([
            ("gpu".to_owned(), vec!["true".to_owned()]),
            ("region".to_owned(), vec!["eu".to_owned(), "us".to_owned()]),
            ("tier".to_owned(), vec!["gold".to_owned()]),
        ]),
        wait_for: vec![1],
        recurrent: false,
        group: None,
        streams: None,
    };
    assert_eq!(definition.options, expected);
}

#[test]
fn flag_options() {
    let all_cache = CacheConfig {
        params: ParamSelection::All(true),
        max_age_ms: None,
        namespace: None,
        version: None,
    };
    let bare = flags.definition().options;
    assert_eq!(bare.retries, Some(RetryPolicy::limit(3)));
    assert_eq!(bare.cache, Some(all_cache.clone()));
    assert_eq!(bare.memo, Some(ParamSelection::All(true)));
    assert_eq!(
        bare.defer,
        Some(DeferConfig {
            params: ParamSelection::All(true)
        })
    );
    assert!(bare.recurrent);

    let explicit = flags_explicit.definition();
    assert_eq!(explicit.kind, TargetKind::Workflow);
    let explicit = explicit.options;
    assert_eq!(
        explicit.retries,
        Some(RetryPolicy {
            limit: None,
            backoff_min_ms: 1_000,
            backoff_max_ms: 60_000
        })
    );
    assert_eq!(explicit.cache, Some(all_cache));
    assert_eq!(explicit.memo, Some(ParamSelection::All(true)));
    assert_eq!(
        explicit.defer,
        Some(DeferConfig {
            params: ParamSelection::All(true)
        })
    );
    assert!(explicit.recurrent);

    assert_eq!(flags_off.definition().options, StepOptions::default());
}

#[test]
fn partial_options_take_defaults() {
    let definition = partial.definition();
    assert_eq!(definition.parameters, vec![parameter("count", "u32")]);
    let options = definition.options;
    assert_eq!(
        options.retries,
        Some(RetryPolicy {
            limit: None,
            backoff_min_ms: 250,
            backoff_max_ms: 250
        })
    );
    assert_eq!(
        options.cache,
        Some(CacheConfig {
            params: ParamSelection::All(false),
            max_age_ms: None,
            namespace: None,
            version: None
        })
    );
    assert_eq!(options.memo, Some(ParamSelection::All(true)));
    assert_eq!(options.wait_for, vec![0]);

    let definition = r#match.definition();
    assert_eq!(definition.target.name, "match");
    assert_eq!(
        definition.parameters,
        vec![
            parameter(
                "items",
                "std::collections::HashMap<String, Vec<Option<u8>>>"
            ),
            parameter("pair", "(u32, String)")
        ]
    );
    assert_eq!(definition.options.retries, Some(RetryPolicy::limit(2)));
    assert_eq!(
        definition.options.cache.and_then(|c| c.max_age_ms),
        Some(1000)
    );
}

#[test]
fn run_calls_the_body() {
    assert_eq!(
        block_on(greet::run("Ada".into(), 2)),
        Ok("Hello, Ada! Hello, Ada!".to_owned())
    );
    assert_eq!(
        block_on(greet::run("Oscar".into(), 1)),
        Err(Grumpy("Oscar".into()))
    );
    assert_eq!(block_on(partial::run(41)).expect("runs"), 42);
    assert_eq!(block_on(inner::double::run(21)).expect("runs"), 42);
    assert_eq!(
        block_on(r#match::run(Default::default(), (1, "ab".into()))).expect("runs"),
        2
    );
}

#[test]
fn invoke_decodes_arguments_and_encodes_the_result() {
    let result = block_on(greet.invoke(vec![ok("Ada"), ok(1u32)]));
    assert_eq!(result, Ok(ok("Hello, Ada!")));

    let result = block_on(hello.invoke(vec![ok(vec!["Ada", "Bob"])]));
    assert_eq!(
        result,
        Ok(ok(vec!["Hello, Ada!", "Hello, Bob! Hello, Bob!"]))
    );

    let result = block_on(fetch_task.invoke(vec![ok("abc"), ok(Some(10u64)), ok("xy")]));
    assert_eq!(result, Ok(ok(15usize)));
    // A missing argument decodes as null.
    let result = block_on(fetch_task.invoke(vec![ok("abc"), Value::null(), ok("")]));
    assert_eq!(result, Ok(ok(3usize)));

    let result = block_on(flags.invoke(Vec::new()));
    assert_eq!(result, Ok(Value::null()));

    let mut items = std::collections::HashMap::new();
    items.insert("k".to_owned(), vec![Some(1u8), None]);
    let result = block_on(r#match.invoke(vec![ok(items), ok((1u32, "abc"))]));
    assert_eq!(result, Ok(ok(4usize)));
}

#[test]
fn invoke_reports_bad_arguments_and_errors() {
    let failure = block_on(greet.invoke(vec![ok("Ada"), ok("many")])).expect_err("bad argument");
    assert_eq!(failure.0.error_type, "coflux.DecodeError");
    assert!(
        failure.0.message.contains("argument 1 ('n')"),
        "{}",
        failure.0.message
    );

    let failure = block_on(greet.invoke(vec![ok("Oscar"), ok(1u32)])).expect_err("grumpy");
    assert!(
        failure.0.error_type.ends_with("Grumpy"),
        "{}",
        failure.0.error_type
    );
    assert_eq!(failure.0.message, "no greeting for Oscar");
}

#[test]
fn call_and_submit_run_in_place_outside_an_orchestrator() {
    assert_eq!(
        block_on(greet.call("Ada".into(), 1)),
        Ok("Hello, Ada!".to_owned())
    );
    assert_eq!(block_on(inner::double.call(4)), Ok(8));
    assert_eq!(block_on(partial.call(1)), Ok(2));

    let handle = greet.submit("Bob".into(), 1);
    assert_eq!(block_on(handle.id()), None);
    assert_eq!(block_on(handle.result()), Ok("Hello, Bob!".to_owned()));

    // A child's error reaches the caller with its type and message...
    let error = block_on(greet.call("Oscar".into(), 1)).expect_err("grumpy");
    assert!(error.is::<Grumpy>());
    // ...and passes through `?` in a workflow body unchanged.
    let failure = block_on(hello::run(vec!["Ada".into(), "Oscar".into()])).expect_err("grumpy");
    assert!(matches!(ExecutionError::Failed(failure.0.clone()), e if e.is::<Grumpy>()));
    assert_eq!(
        block_on(hello.call(vec!["Ada".into()])),
        Ok(vec!["Hello, Ada!".to_owned()])
    );
}

#[test]
fn targets_register_in_a_repository() {
    let repository = Repository::new()
        .with(greet)
        .with(hello)
        .with(fetch_task)
        .with(inner::double);
    let names: Vec<String> = repository
        .definitions()
        .into_iter()
        .map(|d| d.target.to_string())
        .collect();
    assert_eq!(
        names,
        vec![
            "app.io/fetch",
            "macros/greet",
            "macros/hello",
            "macros.inner/double"
        ]
    );
    assert!(repository.get(&TargetRef::new("macros", "greet")).is_some());
}

#[test]
fn the_crate_path_can_be_overridden() {
    let definition = reexported.definition();
    assert_eq!(definition.target, TargetRef::new("macros", "via_reexport"));
    assert_eq!(block_on(reexported.call(1)), Ok(2));
}
