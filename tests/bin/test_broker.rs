//! An MQTT broker (rumqttd, the one the hub embeds) as its own process, so end-to-end tests can stop it and
//! start it again to simulate an outage. `checkpoint-test-broker PORT` listens on 127.0.0.1:PORT.

fn main() -> std::process::ExitCode {
    let Some(port) = std::env::args().nth(1).and_then(|p| p.parse::<u16>().ok()) else {
        eprintln!("usage: checkpoint-test-broker PORT");
        return std::process::ExitCode::from(2);
    };
    let config = checkpoint_e2e::mqtt::rumqttd_config(port);
    let mut broker = rumqttd::Broker::new(config);
    match broker.start() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("broker: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
