//! The API key never appears in Debug output, error text or the sandbox's
//! answers, whatever goes wrong.

mod sandbox_support;

use sandbox_support::*;
use sonicflow::api::*;
use sonicflow::sandbox::Faults;

const SECRET: &str = "sk-live-SUPERSECRET-4f2a9c";

fn assert_clean(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} leaks the key: {text}");
    assert!(
        !text.contains("SUPERSECRET"),
        "{what} leaks part of the key: {text}"
    );
}

#[tokio::test]
async fn key_never_leaks_through_debug_or_errors() {
    let key = ApiKey::new(SECRET).unwrap();
    assert_clean("ApiKey Debug", &format!("{key:?}"));
    let mut errors = Vec::new();

    // Refused key.
    let (handle, _) = start(fast().with_keys(vec!["other".into()])).await;
    let config = ClientConfig::new(handle.base_url(), key.clone()).unwrap();
    assert_clean("ClientConfig Debug", &format!("{config:?} {config:#?}"));
    let client = Client::new(&config).unwrap();
    assert_clean("Client Debug", &format!("{client:?} {client:#?}"));
    errors.push(client.credits().await.unwrap_err());

    // In doubt, decode, transient and invalid errors.
    for faults in [
        Faults {
            drop_after_charge: 1.0,
            ..Faults::default()
        },
        Faults {
            malformed_json: 1.0,
            ..Faults::default()
        },
        Faults {
            http_500: 1.0,
            ..Faults::default()
        },
    ] {
        let (handle, _) = start(fast().with_faults(faults)).await;
        let client =
            Client::new(&ClientConfig::new(handle.base_url(), key.clone()).unwrap()).unwrap();
        errors.push(
            client
                .create(&CreateRequest {
                    fields: fields_for("sonic-v5"),
                    ..Default::default()
                })
                .await
                .unwrap_err(),
        );
        errors.push(client.wav("x").await.unwrap_err());
        errors.extend(client.credits().await.err());
    }
    let closed =
        Client::new(&ClientConfig::new("http://127.0.0.1:9", key.clone()).unwrap()).unwrap();
    errors.push(closed.create(&CreateRequest::default()).await.unwrap_err());

    let classes: std::collections::HashSet<_> = errors.iter().map(ApiError::class).collect();
    assert!(classes.len() >= 5, "{classes:?}");
    for err in &errors {
        assert_clean("error Display", &err.to_string());
        assert_clean("error Debug", &format!("{err:?} {err:#?}"));
    }
}

#[test]
fn missing_key_error_names_the_fix_without_values() {
    let err = ConfigError::MissingKey.to_string();
    assert!(
        err.contains("MUSICAPI_KEY") && err.contains("--api-key-file"),
        "{err}"
    );
}
