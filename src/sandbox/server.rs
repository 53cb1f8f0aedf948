//! The axum router and the in-process server lifecycle.

use axum::serve::ListenerExt;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::endpoints::{POSTS, reads};
use super::pipeline;
use super::world::Shared;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let mut router = Router::new();
    for &(path, validate) in POSTS {
        let handler = move |State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes| {
            pipeline::handle(s, path, validate, headers, body)
        };
        router = if path == "/api/v1/sonic/batch" {
            router.route(path, post(handler).get(reads::batch_status))
        } else {
            router.route(path, post(handler))
        };
    }
    router
        .route("/api/v1/sonic/task/{task_id}", get(reads::task))
        .route("/api/v1/sonic/task", get(reads::missing_task_id))
        .route("/api/v1/sonic/task/", get(reads::missing_task_id))
        .route("/api/v1/get-credits", get(reads::credits))
        .route("/files/{name}", get(reads::file))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            count_request,
        ))
        .route("/_sandbox/ledger", get(reads::ledger))
        .route("/_sandbox/requests", get(reads::requests))
        .with_state(shared)
}

/// Counts every request of the API's own routes.
async fn count_request(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    shared
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    next.run(request).await
}

/// A running server: stop it with the sender, wait for it with the handle.
pub(crate) struct Running {
    pub stop: oneshot::Sender<()>,
    pub join: JoinHandle<std::io::Result<()>>,
}

pub(crate) fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let app = router(shared);
    // Small requests and answers go out at once rather than waiting on
    // Nagle's algorithm, as a production front end would send them.
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    let join = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    Running { stop, join }
}
