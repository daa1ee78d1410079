//! `GET /admin/upstreams/{id}/health`: each node as the balancer sees it now, and why.
//!
//! Read from the node state registry of `portico-upstream` (the same atomics the balancer
//! reads, kept across reloads), never from a copy.

use portico_config::Upstream;
use portico_upstream::{Circuit, HealthCheck, NodeState, NodeView, now_us};
use serde_json::{Value, json};

/// The health of every node of `upstream` (a top-level upstream of the live config).
pub fn report(upstream: &Upstream) -> Value {
    let checks: HealthCheck = upstream
        .health_check
        .clone()
        .and_then(|v| serde_yaml::from_value(v).ok())
        .unwrap_or_default();
    let now = now_us();
    let nodes: Vec<Value> = upstream
        .nodes
        .iter()
        .map(|n| {
            let view = NodeState::lookup(&upstream.id, &n.address).map(|s| s.view(now));
            node(&n.address, n.weight, view.as_ref(), &checks)
        })
        .collect();
    let healthy = nodes.iter().filter(|n| n["healthy"] == true).count();
    json!({
        "id": upstream.id,
        "healthy_nodes": healthy,
        "nodes": nodes,
        "checks": {
            "active": checks.active.is_some(),
            "passive": checks.passive.is_some(),
        },
    })
}

fn node(address: &str, weight: u32, view: Option<&NodeView>, checks: &HealthCheck) -> Value {
    let Some(v) = view else {
        return json!({
            "address": address,
            "weight": weight,
            "healthy": Value::Null,
            "reason": "no live state: no route uses this upstream, so it gets no traffic and no checks",
        });
    };
    let active = match &checks.active {
        None => json!({ "state": "off" }),
        Some(_) => json!({
            "state": if v.active_down { "down" } else { "up" },
            "successes_in_a_row": v.active_successes,
            "failures_in_a_row": v.active_failures,
            "last_error": v.last_probe_error,
        }),
    };
    let passive = match (&checks.passive, v.circuit) {
        (None, Circuit::Closed { .. }) => json!({ "circuit": "off" }),
        (_, Circuit::Closed { failures }) => json!({ "circuit": "closed", "failures_in_a_row": failures }),
        (_, Circuit::Open { remaining_us }) => {
            json!({ "circuit": "open", "half_open_in_ms": remaining_us / 1000 })
        }
        (_, Circuit::HalfOpen { trial_in_flight }) => {
            json!({ "circuit": "half_open", "trial_in_flight": trial_in_flight })
        }
    };
    json!({
        "address": address,
        "weight": weight,
        "healthy": v.healthy,
        "reason": reason(v),
        "in_flight": v.in_flight,
        "active": active,
        "passive": passive,
        "last_change": v.last_change.as_ref().map(|(ago, what)| json!({ "what": what, "ms_ago": ago / 1000 })),
    })
}

/// One sentence: why the node is (not) taking requests.
fn reason(v: &NodeView) -> String {
    if v.active_down {
        return match &v.last_probe_error {
            Some(e) => format!("active check failing: {e}"),
            None => "active check failing".into(),
        };
    }
    match v.circuit {
        Circuit::Open { remaining_us } => format!(
            "passive: circuit open after failed requests; a trial request in {} ms",
            remaining_us / 1000
        ),
        Circuit::HalfOpen { trial_in_flight: true } => {
            "passive: circuit half-open, a trial request is in flight".into()
        }
        Circuit::HalfOpen { trial_in_flight: false } => {
            "passive: circuit half-open, the next request is a trial".into()
        }
        Circuit::Closed { .. } => "up".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(yaml: &str) -> Upstream {
        serde_yaml::from_str(yaml).expect("upstream")
    }

    #[test]
    fn a_node_without_live_state_says_so() {
        let v = report(&upstream(
            "{ id: admin-test-none, nodes: [{ address: '127.0.0.1:1' }] }",
        ));
        assert_eq!(v["nodes"][0]["healthy"], Value::Null);
        assert_eq!(v["healthy_nodes"], 0);
    }

    #[test]
    fn a_live_node_reports_its_circuit_and_checks() {
        let u = upstream(
            "{ id: admin-test-live, nodes: [{ address: '127.0.0.1:2', weight: 3 }], health_check: { passive: { failures: 1 } } }",
        );
        let state = NodeState::shared("admin-test-live", "127.0.0.1:2");
        let v = report(&u);
        assert_eq!(v["nodes"][0]["healthy"], true);
        assert_eq!(v["nodes"][0]["weight"], 3);
        assert_eq!(v["nodes"][0]["active"]["state"], "off");
        assert_eq!(v["nodes"][0]["passive"]["circuit"], "closed");

        state.report(
            portico_upstream::Outcome::Failure,
            1,
            std::time::Duration::from_secs(60),
            now_us(),
        );
        let v = report(&u);
        let n = &v["nodes"][0];
        assert_eq!(n["healthy"], false, "{v}");
        assert_eq!(n["passive"]["circuit"], "open");
        assert!(n["reason"].as_str().unwrap_or_default().contains("circuit open"), "{v}");
        assert!(
            n["last_change"]["what"]
                .as_str()
                .unwrap_or_default()
                .contains("ejected"),
            "{v}"
        );
    }
}
