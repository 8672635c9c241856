//! An embedding crate's own handlers (contract §10, "for Rust teams"): the handlers of
//! `examples/custom_events.rs`, included as a module so the test runs the example's exact
//! code, registered through `Application::build_with_events` beside the built-in events.

#[path = "../../examples/custom_events.rs"]
mod custom_events;

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn an_embedders_handlers_answer_their_events_and_built_ins_stay_built_in() {
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(dir.path());
    let app = spawn_with_events(settings, dir, custom_events::events()).await;
    app.create_user("ann", "ann-pass-1", "user").await;
    app.create_user("ben", "ben-pass-1", "user").await;
    let (ann, ann_info) = app.connect_ok(&app.login("ann", "ann-pass-1").await).await;
    let (mut ben, _) = app.connect_ok(&app.login("ben", "ben-pass-1").await).await;

    // The Lifecycle hook: connected.app, and the room it joined.
    assert_eq!(ann_info["app"], json!({"motd": "welcome, ann"}));

    let ack = ann
        .emit_with_ack_args("whoami", vec![json!(1), json!("two")], WAIT)
        .await
        .unwrap();
    assert_eq!(ack[0]["ok"], true);
    assert_eq!(ack[0]["username"], "ann");
    assert_eq!(ack[0]["userId"], ann_info["userId"]);
    assert_eq!(ack[0]["args"], 2, "every argument reaches the handler");

    let ack = ann
        .emit_with_ack(
            "room:shout",
            json!({"room": "lobby", "text": "hi all"}),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(ack[0], json!({"ok": true}));
    let got = ben.expect_event("room:shouted", WAIT).await.unwrap();
    assert_eq!(
        got[0],
        json!({"from": ann_info["userId"], "text": "hi all"})
    );

    let bad = ann
        .emit_with_ack("room:shout", json!({"room": "lobby"}), WAIT)
        .await
        .unwrap();
    assert_eq!(bad[0]["code"], "BAD_REQUEST");

    // A pattern handler takes every "dice:*" event.
    let ack = ann
        .emit_with_ack("dice:roll", json!(20), WAIT)
        .await
        .unwrap();
    assert_eq!(
        ack[0],
        json!({"ok": true, "event": "dice:roll", "sides": 20})
    );

    // Built-in events keep their own handler; other names are still unknown.
    let ack = ann
        .emit_with_ack("send_message", json!({"to": 1, "content": ""}), WAIT)
        .await
        .unwrap();
    assert_eq!(ack[0]["code"], "BAD_REQUEST");
    let ack = ann.emit_with_ack("dicey", json!(1), WAIT).await.unwrap();
    assert_eq!(ack[0]["code"], "BAD_REQUEST");
    assert!(
        ack[0]["message"]
            .as_str()
            .unwrap()
            .contains("unknown event")
    );
}
