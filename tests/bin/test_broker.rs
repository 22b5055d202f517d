//! An MQTT broker (rumqttd, the one the hub embeds) as its own process, so end-to-end tests can stop it and
//! start it again to simulate an outage. `checkpoint-test-broker PORT` listens on 127.0.0.1:PORT.

fn main() -> std::process::ExitCode {
    let Some(port) = std::env::args().nth(1).and_then(|p| p.parse::<u16>().ok()) else {
        eprintln!("usage: checkpoint-test-broker PORT");
        return std::process::ExitCode::from(2);
    };
    let config = format!(
        r#"
id = 0
[router]
max_connections = 1000
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10
[v4.1]
name = "v4-1"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 4194304
max_inflight_count = 100
dynamic_filters = true
"#
    );
    let config: rumqttd::Config = match toml::from_str(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("broker config: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let mut broker = rumqttd::Broker::new(config);
    match broker.start() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("broker: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
