"""From a checkpoint to a frame stream: loading, the streaming synthesizer, the backend choice, ONNX/TensorRT export, benchmarks."""
