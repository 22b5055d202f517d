//! Execution-provider selection on a CPU-only ONNX Runtime (the PyPI `onnxruntime` wheel): `auto` falls back to
//! the CPU and says so; asking for CUDA or TensorRT explicitly is a clear error naming what to install.

mod common;

use checkpoint_vision::{Provider, Runtime, RuntimeOptions};

#[test]
fn auto_falls_back_to_cpu_and_explicit_gpu_providers_explain_what_is_missing() {
    let rt = Runtime::init(RuntimeOptions {
        provider: Provider::Auto,
        ..Default::default()
    })
    .unwrap();
    let model = common::model("yunet");
    let offered = rt.available_providers();
    if offered.contains(&"CUDAExecutionProvider") {
        eprintln!("this ONNX Runtime offers CUDA; the CPU-only expectations below do not apply");
        return;
    }
    let (_, used) = rt.session(&model, &[]).unwrap();
    assert_eq!(used, Provider::Cpu);
    for p in [Provider::Cuda, Provider::Tensorrt] {
        let err = match rt.session_on(&model, &[], p, checkpoint_vision::GraphEdit::ForCpu) {
            Ok(_) => panic!("{p:?} cannot work on a CPU-only runtime"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("onnxruntime-gpu"), "{p:?}: {err}");
    }
}

#[test]
fn provider_names_parse_and_unknown_ones_are_refused() {
    assert_eq!("CUDA".parse::<Provider>().unwrap(), Provider::Cuda);
    assert_eq!("trt".parse::<Provider>().unwrap(), Provider::Tensorrt);
    let err = "gpu".parse::<Provider>().unwrap_err().to_string();
    assert!(err.contains("cpu, cuda, tensorrt or auto"), "{err}");
}
