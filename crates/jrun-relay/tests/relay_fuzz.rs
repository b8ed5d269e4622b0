//! Arbitrary JSON (and bytes) thrown at the roster endpoints: the relay never panics, never
//! answers 5xx, and accepts exactly the rosters an independent check calls valid.

use std::collections::HashSet;
use std::net::Ipv6Addr;
use std::sync::LazyLock;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use jrun_mesh::protocol::Roster;
use jrun_relay::{Relay, RelayConfig};
use proptest::prelude::*;
use serde_json::{Map, Value};
use tower::ServiceExt;

static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
});

fn relay() -> Relay {
    Relay::new(RelayConfig {
        rate_per_second: 1e9,
        rate_burst: u32::MAX,
        network_rate_per_second: 1e9,
        network_rate_burst: u32::MAX,
        max_failed_lookups_per_minute: u32::MAX,
        max_pending: 1_000_000,
        max_pending_per_client: 1_000_000,
        max_pending_per_network: 1_000_000,
        max_roster_jails: 8,
        ..RelayConfig::default()
    })
}

/// The rules of DESIGN §5, written out again without the library's types.
fn expected_valid(v: &Value) -> bool {
    let Some(top) = v.as_object() else {
        return false;
    };
    if top.len() != 1 {
        return false;
    }
    let Some(jails) = top.get("jails").and_then(Value::as_array) else {
        return false;
    };
    if jails.len() > 8 {
        return false;
    }
    let mut names = HashSet::new();
    let mut addrs = HashSet::new();
    jails.iter().all(|j| {
        let Some(o) = j.as_object() else { return false };
        let (Some(Value::String(name)), Some(Value::String(addr))) =
            (o.get("name"), o.get("ygg_address"))
        else {
            return false;
        };
        let name_ok = (1..=63).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        let addr_ok = addr.parse::<Ipv6Addr>().is_ok_and(|a| a.octets()[0] == 2);
        o.len() == 2
            && name_ok
            && addr_ok
            && names.insert(name.clone())
            && addrs.insert(addr.parse::<Ipv6Addr>().unwrap())
    })
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]{1,3}",
        "[a-z0-9-]{0,5}",
        "[a-zA-Z0-9 .\"\\n;-]{0,6}",
        Just("a".repeat(63)),
        Just("a".repeat(64)),
        ".*",
    ]
}

fn address() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u16..4).prop_map(|n| format!("200::{n}")),
        any::<u128>().prop_map(|n| Ipv6Addr::from(n).to_string()),
        any::<u128>().prop_map(|n| Ipv6Addr::from((n >> 8) | (0x02u128 << 120)).to_string()),
        Just("::/0".to_string()),
        Just("300::1".to_string()),
        Just("200::1%eth0".to_string()),
        ".*",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        name().prop_map(Value::String),
        address().prop_map(Value::String),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("jails".to_string()),
        Just("name".to_string()),
        Just("ygg_address".to_string()),
        "[a-z_]{1,8}",
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn jail() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            12 => "[a-z][a-z0-9]{0,7}".prop_map(Value::String),
            2 => name().prop_map(Value::String),
            1 => leaf(),
        ],
        prop_oneof![
            12 => any::<u128>().prop_map(|n| Value::String(Ipv6Addr::from((n >> 8) | (0x02u128 << 120)).to_string())),
            2 => address().prop_map(Value::String),
            1 => leaf(),
        ],
        prop::option::weighted(0.1, (key(), leaf())),
        prop::option::weighted(0.05, Just(())),
    )
        .prop_map(|(name, addr, extra, drop_addr)| {
            let mut o = Map::new();
            o.insert("name".into(), name);
            if drop_addr.is_none() {
                o.insert("ygg_address".into(), addr);
            }
            if let Some((k, v)) = extra {
                o.insert(k, v);
            }
            Value::Object(o)
        })
}

fn roster_like() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(jail(), 0..9),
        prop::option::weighted(0.1, (key(), leaf())),
    )
        .prop_map(|(jails, extra)| {
            let mut o = Map::new();
            o.insert("jails".into(), Value::Array(jails));
            if let Some((k, v)) = extra {
                o.insert(k, v);
            }
            Value::Object(o)
        })
}

async fn post(relay: &Relay, uri: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let request = Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = relay.router().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, bytes.to_vec())
}

fn check(
    relay: &Relay,
    rt: &tokio::runtime::Runtime,
    body: Vec<u8>,
    valid: bool,
) -> Result<(), TestCaseError> {
    let code = relay
        .store()
        .create([127, 0, 0, 1].into(), Roster { jails: vec![] })
        .unwrap();
    for uri in ["/pair".to_string(), format!("/pair/{code}")] {
        let (status, answer) = rt.block_on(post(relay, &uri, body.clone()));
        prop_assert!(
            !status.is_server_error(),
            "{status} for {}",
            String::from_utf8_lossy(&body)
        );
        if valid {
            prop_assert_eq!(
                status,
                StatusCode::OK,
                "{}",
                String::from_utf8_lossy(&answer)
            );
        } else {
            prop_assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{}",
                String::from_utf8_lossy(&body)
            );
            let err: Value = serde_json::from_slice(&answer).unwrap();
            prop_assert!(err["error"].is_string());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn roster_shaped_json(v in roster_like()) {
        let relay = relay();
        check(&relay, &RT, serde_json::to_vec(&v).unwrap(), expected_valid(&v))?;
    }

    #[test]
    fn any_json_value(v in any_json()) {
        let relay = relay();
        check(&relay, &RT, serde_json::to_vec(&v).unwrap(), expected_valid(&v))?;
    }

    #[test]
    fn any_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let relay = relay();
        let valid = serde_json::from_slice::<Value>(&body).is_ok_and(|v| expected_valid(&v));
        check(&relay, &RT, body, valid)?;
    }
}

/// The roster-shaped strategy must produce both kinds, or the property above proves little.
#[test]
fn the_generator_covers_valid_and_invalid_rosters() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = roster_like();
    let valid = (0..1000)
        .filter(|_| expected_valid(&strategy.new_tree(&mut runner).unwrap().current()))
        .count();
    assert!((100..900).contains(&valid), "{valid} of 1000 valid");
}
