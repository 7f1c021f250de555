//! The URL table: which request gets which answer.
//!
//! Streams are served at `/stream/<name>` and at their `url`; `/` lists them (when the home
//! page is on), `/config` shows the final configuration (when enabled), and the status page,
//! API and metrics answer at their configured paths. Unknown paths get 404, methods other
//! than GET and HEAD 405, and a stream whose command cannot start 502 with a short text saying
//! why, rather than a hanging client or an empty 200.
//!
//! Routes see the decoded path ([`url`]); a path that does not decode is 400. HEAD runs what
//! GET runs and drops the body, so the two always agree on status and headers. Every error
//! answer closes its connection, as the spec asks of 415 and of pictures.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{Either, Full};

use super::body::{Client, ClientBody};
use super::direct::DirectSocket;
use super::mpjpeg;
use super::stall::ResetOnClose;
use super::url;
use crate::config::{Config, Page, StreamKind};
use crate::container::{Container, select};
use crate::fanout::hub::{BATCH_CHUNKS_MAX, Event};
use crate::fanout::join::{Join, flag};
use crate::registry::{Registry, Snapshot};
use crate::screenshot::{self, ScreenshotError, Screenshots};
use crate::stats::Traffic;
use crate::status::metrics::{self, Format};
use crate::status::{ServerFacts, StatusView, api};
use crate::stream::Stream;

/// The body of any response: a fixed one, or a live stream.
pub type ResponseBody = Either<Full<Bytes>, ClientBody>;

/// How long a new client of an idle stream waits for its first byte before the response
/// headers go out anyway. Within it, a command that cannot start is reported as 502.
/// Commands that take longer to produce output (long probing) still stream, just without that
/// check.
const FIRST_BYTE_WAIT: Duration = Duration::from_secs(3);

/// Everything a request handler needs.
pub struct Routes {
    /// The running feeds and streams, and the configuration they come from: each request
    /// reads the snapshot current when it arrives.
    pub registry: Registry,
    /// Screenshots being taken, shared by concurrent requests.
    pub screenshots: Screenshots,
    /// What the status views say of the server itself.
    pub facts: ServerFacts,
    /// Connections and requests, counted for the metrics.
    pub traffic: Arc<Traffic>,
}

impl Routes {
    /// Answers one request.
    pub async fn handle<B>(
        self: Arc<Self>,
        request: Request<B>,
        peer: SocketAddr,
        reset: ResetOnClose,
        socket: Arc<DirectSocket>,
    ) -> Result<Response<ResponseBody>, Infallible> {
        let decoded = url::decode_path(request.uri().path());
        let agent = request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|agent| agent.to_str().ok())
            .unwrap_or("-");
        let client = Client {
            peer,
            path: decoded
                .as_deref()
                .unwrap_or(request.uri().path())
                .to_string(),
            started: std::time::Instant::now(),
            agent: agent.to_string(),
            reset,
            socket,
        };
        let path = &client.path;
        tracing::info!(%peer, method = %request.method(), %path, agent, "client connected");
        let head = request.method() == Method::HEAD;
        let unanswered = Unanswered(Some(client.clone()));
        let mut response = match decoded {
            Ok(_) => {
                let accept = request.headers().get(header::ACCEPT);
                let accept = accept.and_then(|accept| accept.to_str().ok());
                self.respond(
                    request.method(),
                    request.uri().query(),
                    accept,
                    client.clone(),
                )
                .await
            }
            Err(error) => text(StatusCode::BAD_REQUEST, &format!("{error}\n")),
        };
        unanswered.answered();
        self.traffic.answered(response.status().as_u16());
        if response.status().is_client_error() || response.status().is_server_error() {
            response = closing(response);
        }
        if let Either::Left(body) = response.body() {
            // Stream bodies log their own end when they are dropped.
            let size = http_body::Body::size_hint(body).exact().unwrap_or(0);
            tracing::info!(
                %peer,
                %path,
                status = response.status().as_u16(),
                bytes = if head { 0 } else { size },
                duration = ?client.started.elapsed(),
                "client answered"
            );
        }
        Ok(if head {
            without_body(response)
        } else {
            response
        })
    }

    async fn respond(
        &self,
        method: &Method,
        query: Option<&str>,
        accept: Option<&str>,
        client: Client,
    ) -> Response<ResponseBody> {
        if !matches!(*method, Method::GET | Method::HEAD) {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let snapshot = self.registry.load();
        if let Some(stream) = snapshot.stream_at(&client.path) {
            if snapshot.stopped(stream) {
                return stream_stopped();
            }
            return match stream.config.kind {
                StreamKind::Shot => shot(stream).await,
                StreamKind::Stream => self.stream(stream, query, client).await,
            };
        }
        if let Some((base, format)) = screenshot::split_picture_path(&client.path)
            && let Some(stream) = snapshot.stream_at(base)
            && stream.config.kind == StreamKind::Stream
        {
            if snapshot.stopped(stream) {
                return stream_stopped();
            }
            return match screenshot::format_from_query(format, query) {
                Ok(format) => self.picture(stream, format).await,
                Err(error) => text(StatusCode::BAD_REQUEST, &format!("{error}\n")),
            };
        }
        match snapshot.config.page_at(&client.path) {
            Some(Page::Home) => home(&snapshot.config),
            Some(Page::Config) => text(
                StatusCode::OK,
                crate::config::render_yaml(&snapshot.config).as_str(),
            ),
            Some(page @ (Page::Status | Page::StatusApi | Page::Metrics)) => {
                self.status(page, snapshot, accept).await
            }
            None => text(StatusCode::NOT_FOUND, "no such stream or page\n"),
        }
    }

    async fn stream(
        &self,
        stream: &Stream,
        query: Option<&str>,
        client: Client,
    ) -> Response<ResponseBody> {
        let parameters =
            Join::from_query(query).and_then(|join| Ok((join, flag(query, "mpjpeg")?)));
        let (join, wants_mpjpeg) = match parameters {
            Ok(parameters) => parameters,
            Err(error) => return text(StatusCode::BAD_REQUEST, &format!("{error}\n")),
        };
        let mimetype = &stream.config.mimetype;
        let multipart = select::from_mimetype(mimetype) == Some(Container::Mpjpeg);
        // A browser shows whole parts only: a multipart client never starts mid-part.
        let join = match (wants_mpjpeg, multipart) {
            (true, _) => join.at_least(Join::Keyframe),
            (false, true) => join.at_least(Join::Header),
            (false, false) => join,
        };
        let mut subscriber = stream.subscribe(join, self.registry.tasks());
        let mut first = VecDeque::new();
        // A running producer needs no proof that it starts: answer at once with what is
        // ready (a cached header, `keyframe=last`'s GOP) and let only the data wait.
        let first_wait = if subscriber.hub().producing() {
            Duration::ZERO
        } else {
            FIRST_BYTE_WAIT
        };
        let waited =
            tokio::time::timeout(first_wait, subscriber.next(&mut first, BATCH_CHUNKS_MAX)).await;
        if let Ok(Event::Lagged) = waited {
            subscriber.skip_to_live();
        }
        match waited {
            Ok(Event::Failed(reason)) => {
                tracing::warn!(peer = %client.peer, path = %client.path, %reason, "stream could not start");
                text(StatusCode::BAD_GATEWAY, &format!("{reason}\n"))
            }
            Ok(Event::Ended) => text(StatusCode::BAD_GATEWAY, "stream ended\n"),
            Ok(Event::Closed) => text(StatusCode::SERVICE_UNAVAILABLE, "server stopping\n"),
            Ok(Event::Data | Event::Skipped | Event::Lagged) | Err(_) => {
                let raw_mjpeg = subscriber
                    .hub()
                    .framing_info()
                    .is_some_and(|info| info.container == Container::Mjpeg);
                if wants_mpjpeg && !raw_mjpeg {
                    return text(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "?mpjpeg needs a stream of raw MJPEG (ffmpeg -f mjpeg)\n",
                    );
                }
                let body = ClientBody::new(stream, join, subscriber, first, client);
                if raw_mjpeg && (wants_mpjpeg || multipart) {
                    live_response(mpjpeg::MIMETYPE, Either::Right(body.wrap_mpjpeg()))
                } else {
                    live_response(mimetype, Either::Right(body))
                }
            }
        }
    }
}

impl Routes {
    /// `/stat.json`: never cached, as every answer is a new moment.
    /// The status page, API or metrics. Rendering a thousand clients' rows takes
    /// milliseconds of CPU: that runs on a blocking thread, off the runtime's workers, where
    /// every moment taken is a stream's latency.
    async fn status(
        &self,
        page: Page,
        snapshot: Arc<Snapshot>,
        accept: Option<&str>,
    ) -> Response<ResponseBody> {
        let facts = self.facts.clone();
        let traffic = self.traffic.view();
        let format = Format::negotiate(accept);
        let rendered = tokio::task::spawn_blocking(move || {
            let view = StatusView::take(&snapshot, &facts);
            match page {
                Page::Status => Ok((
                    crate::status::page::MIMETYPE,
                    "no-cache, no-store",
                    Bytes::from(crate::status::page::render(&view, &snapshot.config)),
                )),
                Page::StatusApi => api::render(&view)
                    .map(|json| (api::MIMETYPE, "no-store", json))
                    .map_err(|error| error.to_string()),
                _ => Ok((
                    format.content_type(),
                    "no-cache, no-store",
                    Bytes::from(metrics::render(&view, &traffic, format)),
                )),
            }
        })
        .await
        .unwrap_or_else(|error| Err(format!("rendering failed: {error}")));
        match rendered {
            Ok((content_type, cache, body)) => Response::builder()
                .header(header::CONTENT_TYPE, content_type)
                .header(header::CACHE_CONTROL, cache)
                .body(Either::Left(Full::new(body)))
                .expect("static headers are valid"),
            Err(error) => {
                tracing::error!(%error, ?page, "status view failed");
                text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{error}\n"))
            }
        }
    }
}

/// Logs the end of a client that leaves before its answer is ready (while a stream starts,
/// a shot runs or a picture is decoded): hyper then drops the handler, and with it this.
struct Unanswered(Option<Client>);

impl Unanswered {
    fn answered(mut self) {
        self.0 = None;
    }
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            tracing::info!(
                peer = %client.peer,
                path = %client.path,
                bytes = 0,
                duration = ?client.started.elapsed(),
                reason = "left before the answer",
                "client disconnected"
            );
        }
    }
}

impl Routes {
    async fn picture(&self, stream: &Stream, format: screenshot::Format) -> Response<ResponseBody> {
        let taken = self
            .screenshots
            .take(stream, format, self.registry.tasks())
            .await;
        match taken {
            Ok(picture) => closing(stream_response(
                format.mimetype(),
                Either::Left(Full::new(picture)),
            )),
            Err(error) => {
                let status = match error {
                    ScreenshotError::AudioOnly(_) | ScreenshotError::Opaque(_) => {
                        StatusCode::UNSUPPORTED_MEDIA_TYPE
                    }
                    ScreenshotError::NoPicture(..) => StatusCode::GATEWAY_TIMEOUT,
                    ScreenshotError::Failed(_) | ScreenshotError::Decode(..) => {
                        tracing::warn!(stream = %stream.config.name, %error, "screenshot failed");
                        StatusCode::BAD_GATEWAY
                    }
                };
                text(status, &format!("{error}\n"))
            }
        }
    }
}

/// HEAD's answer: GET's status and headers without its body. A stream's subscription ends
/// here, so a HEAD never keeps a stream running, and its connection stays open (as HTTP/1.1)
/// since no body has to end it; a whole body (a picture, a page) stays for hyper, which sends
/// its `Content-Length` and none of its bytes.
fn without_body(response: Response<ResponseBody>) -> Response<ResponseBody> {
    let (mut parts, body) = response.into_parts();
    let body = match body {
        Either::Right(stream) => {
            stream.end_headers_only();
            parts.version = Version::HTTP_11;
            parts.headers.remove(header::CONNECTION);
            Either::Left(Full::default())
        }
        whole => whole,
    };
    Response::from_parts(parts, body)
}

/// The response with `Connection: close`: the spec closes the connection after a picture and
/// after a 415, and voyandz after every error: a client that erred starts afresh, and a
/// request body nobody read is never parsed as the next request.
fn closing(mut response: Response<ResponseBody>) -> Response<ResponseBody> {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

async fn shot(stream: &Stream) -> Response<ResponseBody> {
    match stream.shot().await {
        Ok(picture) => closing(stream_response(
            &stream.config.mimetype,
            Either::Left(Full::new(picture)),
        )),
        Err(error) => {
            tracing::warn!(stream = %stream.config.name, %error, "shot failed");
            text(
                StatusCode::BAD_GATEWAY,
                &format!("stream \"{}\": {error}\n", stream.config.name),
            )
        }
    }
}

/// A live stream's response: HTTP/1.0 with a body that ends when the connection closes, as
/// Icecast and ffserver answer, so that its bytes are the stream's own, written straight into
/// the socket (see [`super::direct`]); a chunked body would need hyper's framing around each
/// write. It ends with a close (a clean end) or a reset (cut off).
fn live_response(mimetype: &str, body: ResponseBody) -> Response<ResponseBody> {
    let mut response = stream_response(mimetype, body);
    *response.version_mut() = Version::HTTP_10;
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn stream_response(mimetype: &str, body: ResponseBody) -> Response<ResponseBody> {
    let content_type = HeaderValue::from_str(mimetype)
        .expect("validated: the config rejects a mimetype that is no header value");
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache, no-store")
        // A reverse proxy in front must not buffer a live stream.
        .header("X-Accel-Buffering", "no")
        .body(body)
        .expect("static headers are valid")
}

/// A stream, or a feed it reads, was stopped by an admin: no client is served until started.
fn stream_stopped() -> Response<ResponseBody> {
    text(StatusCode::SERVICE_UNAVAILABLE, "stream stopped\n")
}

fn text(status: StatusCode, message: &str) -> Response<ResponseBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Either::Left(Full::new(Bytes::from(message.to_string()))))
        .expect("static headers are valid")
}

/// The home page: a plain list of links to every stream, and to the status page when on.
fn home(config: &Config) -> Response<ResponseBody> {
    let mut html = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>voyandz</title></head>\
         <body><h1>voyandz</h1>\n",
    );
    if let Some(page) = &config.status.page {
        html.push_str(&format!(
            "<p><a href=\"{}\">status</a></p>\n",
            escape(&url::encode_path(page))
        ));
    }
    html.push_str("<ul>\n");
    for stream in config.streams.values() {
        let path = format!("/stream/{}", stream.name);
        let url = stream.url.as_deref().unwrap_or(&path);
        html.push_str(&format!(
            "<li><a href=\"{}\">{}</a> ({})</li>\n",
            escape(&url::encode_path(url)),
            escape(&stream.name),
            escape(&stream.mimetype)
        ));
    }
    html.push_str("</ul></body></html>\n");
    Response::builder()
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .body(Either::Left(Full::new(Bytes::from(html))))
        .expect("static headers are valid")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
