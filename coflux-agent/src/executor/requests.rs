//! Answers to executors' requests, through the host. Each request runs as its own task, so a
//! `select` that waits does not hold up the others.

use std::path::PathBuf;
use std::rc::Rc;

use coflux_core::model::{StreamOp, TargetKind, TargetRef};
use coflux_core::protocol::executor::{
    AdapterRequest, Cancel, DownloadBlob, ExecutionParams, ResponseError, SubmitExecution,
    SubmitResult,
};
use coflux_core::sdk::SubmitRequest;
use serde_json::{Value as Json, json};

use super::context::ExecutionContext;
use super::ending::Suspension;
use super::host::{ExecutorHost, host_error};
use super::select::{Waited, parse_handles};
use super::{assets, inputs, select, values};

/// The answer to `request`, made by `context`'s execution.
pub(crate) async fn handle(
    host: &Rc<dyn ExecutorHost>,
    context: &ExecutionContext,
    request: AdapterRequest,
) -> Result<Json, ResponseError> {
    match request {
        AdapterRequest::SubmitExecution(params) => submit(host, context, *params).await,
        AdapterRequest::Select(params) => select::select(host, context, params).await,
        AdapterRequest::Cancel(params) => cancel(host, context, params).await,
        AdapterRequest::DownloadBlob(params) => download(host, context, params).await,
        AdapterRequest::UploadBlob(params) => {
            let (key, _) = host
                .put_blob(PathBuf::from(params.source_path))
                .await
                .map_err(|e| host_error("upload_error", e))?;
            Ok(json!({ "blob_key": key }))
        }
        AdapterRequest::PersistAsset(params) => assets::persist(host, params).await,
        AdapterRequest::GetAsset(params) => assets::get(host, params).await,
        AdapterRequest::Suspend(params) => {
            // A consumer suspending until a stream reaches a sequence: that item is demand
            // while it is away (the producer would otherwise wait for it to subscribe again).
            if let Some(wait) = &params.stream_wait
                && let (Some(stream), Some(sequence)) = (
                    wait.get("stream_id")
                        .and_then(Json::as_str)
                        .and_then(|s| s.parse().ok()),
                    wait.get("sequence").and_then(Json::as_u64),
                )
            {
                let op = StreamOp::Await {
                    consumer: context.execution,
                    stream,
                    sequence,
                };
                if let Err(e) = host.stream(op).await {
                    tracing::warn!(execution = %context.execution, error = %e, "stream wait not recorded");
                }
            }
            // The process ends once the answer is out (it waits for its stdin to close); a
            // new attempt of the step runs after `execute_after`.
            context.suspend(Suspension {
                execute_after: params.execute_after,
                dependencies: Default::default(),
            });
            Ok(json!({}))
        }
        AdapterRequest::Flush(_) => {
            // Checkpoints are what is buffered here; logs and metrics go out as they come.
            context
                .checkpoints
                .flush()
                .await
                .map_err(|e| ResponseError::new("flush_error", e))?;
            Ok(json!({}))
        }
        AdapterRequest::StreamRegister(params) => context.streams.register(host, params).await,
        AdapterRequest::StreamOp(params) => stream_op(host, context, params).await,
        AdapterRequest::SubmitInput(params) => inputs::submit(host, context, params).await,
    }
}

async fn submit(
    host: &Rc<dyn ExecutorHost>,
    context: &ExecutionContext,
    params: SubmitExecution,
) -> Result<Json, ResponseError> {
    let mut arguments = Vec::with_capacity(params.arguments.len());
    for argument in params.arguments {
        let value = values::from_wire(host, argument, &context.scratch)
            .await
            .map_err(|e| ResponseError::new("submit_error", format!("argument: {e}")))?;
        arguments.push(value);
    }
    let mut options: coflux_core::model::StepOptions = params.options.into();
    options.group = params.group_id.map(|group| context.group_name(group));
    options.streams = match params.streams {
        Some(streams) => Some(serde_json::from_value(streams).map_err(|e| {
            ResponseError::new("submit_error", format!("invalid streams settings: {e}"))
        })?),
        None => None,
    };
    let request = SubmitRequest {
        target: TargetRef::new(params.module.clone(), params.target.clone()),
        kind: params.kind.unwrap_or(TargetKind::Task),
        arguments,
        options,
    };
    let child = host
        .submit(context.execution, request)
        .await
        .map_err(|e| host_error("submit_error", e))?;
    let result = SubmitResult {
        execution_id: child.to_string(),
        module: params.module,
        target: params.target,
    };
    Ok(serde_json::to_value(result).unwrap_or(Json::Null))
}

async fn cancel(
    host: &Rc<dyn ExecutorHost>,
    context: &ExecutionContext,
    params: Cancel,
) -> Result<Json, ResponseError> {
    let handles = parse_handles(&params.handles)?;
    let from = context.execution;
    let cancels = handles.into_iter().map(|handle| async move {
        match handle {
            Waited::Execution(execution) => host
                .cancel(execution, from)
                .await
                .map_err(|e| host_error("cancel_error", e)),
            Waited::Input(input) => inputs::cancel(host, from, input).await,
        }
    });
    for result in futures::future::join_all(cancels).await {
        result?;
    }
    Ok(json!({}))
}

async fn download(
    host: &Rc<dyn ExecutorHost>,
    context: &ExecutionContext,
    params: DownloadBlob,
) -> Result<Json, ResponseError> {
    let target = PathBuf::from(&params.target_path);
    let error = |e: std::io::Error| ResponseError::new("download_error", e.to_string());
    if params.offset.is_none() && params.length.is_none() {
        host.get_blob(params.blob_key, target)
            .await
            .map_err(|e| host_error("download_error", e))?;
        return Ok(json!({}));
    }
    // A range: fetch the whole blob into scratch space, then copy the range out.
    let whole = context.scratch.join(format!("range-{}", params.blob_key));
    host.get_blob(params.blob_key, whole.clone())
        .await
        .map_err(|e| host_error("download_error", e))?;
    let bytes = tokio::fs::read(&whole).await.map_err(error)?;
    let start = usize::try_from(params.offset.unwrap_or(0))
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let end = match params.length {
        Some(length) => start
            .saturating_add(usize::try_from(length).unwrap_or(usize::MAX))
            .min(bytes.len()),
        None => bytes.len(),
    };
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(error)?;
    }
    tokio::fs::write(&target, &bytes[start..end])
        .await
        .map_err(error)?;
    Ok(json!({}))
}

/// Our `stream_op` extension (Rust executors): a stream operation of the requesting execution,
/// passed to the host as it is.
async fn stream_op(
    host: &Rc<dyn ExecutorHost>,
    context: &ExecutionContext,
    params: ExecutionParams,
) -> Result<Json, ResponseError> {
    let op: StreamOp = params
        .rest
        .get("op")
        .cloned()
        .ok_or_else(|| ResponseError::new("invalid_request", "stream_op without 'op'"))
        .and_then(|op| {
            serde_json::from_value(op)
                .map_err(|e| ResponseError::new("invalid_request", e.to_string()))
        })?;
    if op.execution() != context.execution {
        return Err(ResponseError::new(
            "invalid_request",
            "the stream operation names another execution",
        ));
    }
    let reply = host.stream(op.clone()).await;
    context.streams.passed(&op, reply.as_ref().ok());
    let reply = reply.map_err(|e| host_error("stream_error", e))?;
    Ok(serde_json::to_value(reply).unwrap_or(Json::Null))
}
