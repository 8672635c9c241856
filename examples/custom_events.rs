//! Embedding im-server with event handlers of your own (contract §10, "for Rust teams").
//!
//! Your crate depends on `im-server`, writes an [`EventHandler`] per event (or per pattern),
//! optionally a [`Lifecycle`] for connect / disconnect, and hands them to
//! `Application::build_with_events`. They live in the same registry as the built-in events and
//! the HTTP bridge, with the same auth, rooms, cluster and error codes; built-in names
//! (`send_message`, …) always stay built in.
//!
//!     cargo run --example custom_events      # then, from a socket.io client on /im:
//!     socket.emitWithAck("whoami")           // {ok:true, userId, username, args:0}
//!     socket.emitWithAck("room:shout", {room:"lobby", text:"hi"})  // everyone in lobby gets room:shouted
//!     socket.emitWithAck("dice:roll", 6)     // any "dice:*" event: {ok:true, event, sides}
//!
//! The handlers are built by [`events`], which `tests/api/embedding.rs` also uses (it includes
//! this file), so the example is compiled and exercised by the test suite.

use std::sync::Arc;

use async_trait::async_trait;
use im_server::config::{ConfigSources, Settings};
use im_server::error::AppError;
use im_server::realtime::emit::{Publication, Targets};
use im_server::realtime::events::{
    Admission, ConnectCtx, Departure, EventCtx, EventHandler, Events, Lifecycle,
};
use im_server::startup::Application;
use serde_json::{Value, json};

/// `whoami`: answers from the authenticated session; nothing to look up.
struct WhoAmI;

#[async_trait]
impl EventHandler for WhoAmI {
    async fn handle(&self, ctx: EventCtx<'_>, _data: Option<Value>) -> Result<Value, AppError> {
        let user = &ctx.session.session.user;
        Ok(
            json!({ "ok": true, "userId": user.id, "username": user.username, "args": ctx.args.len() }),
        )
    }
}

/// `room:shout {room, text}`: everyone in the room (on every node) gets `room:shouted`.
struct Shout;

#[async_trait]
impl EventHandler for Shout {
    async fn handle(&self, ctx: EventCtx<'_>, data: Option<Value>) -> Result<Value, AppError> {
        let field = |k: &str| data.as_ref().and_then(|d| d.get(k)).and_then(Value::as_str);
        let (Some(room), Some(text)) = (field("room"), field("text")) else {
            return Err(AppError::bad_request("room:shout needs {room, text}"));
        };
        let targets = Targets {
            rooms: vec![room.to_string()],
            ..Targets::default()
        };
        let from = &ctx.session.session.user.id;
        let p = Publication::new(
            "room:shouted",
            json!({ "from": from, "text": text }),
            &targets,
            false,
        )
        .map_err(AppError::bad_request)?;
        ctx.socket
            .publish(p, false)
            .await
            .map_err(|e| AppError::internal(anyhow::anyhow!(e)))?;
        Ok(json!({ "ok": true }))
    }
}

/// Every `dice:*` event: a pattern handler, like the bridge's `"prefix:*"`.
struct Dice;

#[async_trait]
impl EventHandler for Dice {
    async fn handle(&self, ctx: EventCtx<'_>, data: Option<Value>) -> Result<Value, AppError> {
        let sides = data.as_ref().and_then(Value::as_u64).unwrap_or(6);
        Ok(json!({ "ok": true, "event": ctx.event, "sides": sides }))
    }
}

/// Every socket starts in `lobby` and is told the message of the day in `connected.app`.
struct Lobby;

#[async_trait]
impl Lifecycle for Lobby {
    async fn on_connect(&self, ctx: ConnectCtx<'_>) -> Result<Admission, AppError> {
        Ok(Admission {
            join: vec!["lobby".into()],
            app: Some(json!({ "motd": format!("welcome, {}", ctx.session.user.username) })),
        })
    }
    async fn on_disconnect(&self, gone: Departure) {
        tracing::info!(user_id = %gone.user.id, reason = %gone.reason, "left the lobby");
    }
}

/// The handlers this example adds to the built-in events.
pub fn events() -> Events {
    Events::default()
        .on("whoami", WhoAmI)
        .on("room:shout", Shout)
        .on_matching(["dice:*"], Dice)
        .lifecycle(Arc::new(Lobby))
}

#[allow(dead_code)] // the tests include this file for `events()` only
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let loaded = Settings::load(&ConfigSources::from_process(None))?;
    im_server::telemetry::init(&loaded.settings.log);
    let app = Application::build_with_events(loaded.settings, events()).await?;
    println!("custom_events listening on http://{}", app.local_addr());
    app.run_until_stopped(im_server::shutdown::signal()).await?;
    Ok(())
}
