//! The agent end to end, one test binary (one link of GStreamer and the models' runtime): a real RTSP server
//! or files made with GStreamer, real models, the real `edge-agent` binary, real MQTT brokers. Each module was
//! its own binary before; run one with `cargo test -p checkpoint-e2e --test agent MODULE::`.

mod agent_cli;
mod camera_dropout;
mod counting;
mod counting_rates;
mod media_corpus;
mod models_fetch;
mod mqtt_delivery;
mod mqtt_tls;
mod overload;
mod real_footage;
mod watchlist;
