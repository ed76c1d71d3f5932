"""Offline converters: PyTorch and Hugging Face models -> verified ONNX fp32 -> int8 / 4-bit, with reports.

Installed as ``edge_runtime.converters`` (the ``convert`` extra: torch, onnx, onnxscript, transformers,
tokenizers, safetensors, tqdm). Every conversion ends in a verification against the source model and
writes its outputs all-or-nothing; a report (JSON + markdown) next to the models records sizes,
interleaved latencies, errors against the reference, the float fallback and the CPU's int8 features.

Modules (import the one you need; importing this package loads nothing heavy):

* ``yolo_int8``          a YOLO detector -> calibrated static int8 ONNX, float fallback chosen by measurement
* ``calibration``        calibration and evaluation frames, pre-processed exactly as at run time
* ``sensitivity``        which detector nodes stay in float: graph analysis, then measurement
* ``qdq_align``          one quantization for every tensor a Concat joins (no re-quantizing Concats)
* ``det_metrics``        detection agreement (mAP@0.5, per-frame counts) between a converted detector and its float
* ``gguf_export``        Hugging Face checkpoint -> GGUF (F32 / F16 / Q8_0 / Q4_0 / Q4_1)
* ``gguf_requant``       re-quantize a GGUF file with the native quantizers (or llama.cpp for K-quants)
* ``llm_onnx``           Llama-architecture LLM -> ONNX with a KV cache -> 4-bit MatMulNBits, compared with GGUF
* ``hf_checkpoint``      a Hugging Face checkpoint folder, validated and opened without loading it
* ``torch_export``       nn.Module (or state dict + class) -> ONNX fp32, verified on random shapes
* ``transformer_export`` Hugging Face encoder dir -> fp32 / dynamic int8 / 4-bit + report
* ``mtcnn_convert``      MTCNN PNet/RNet/ONet -> fp32 + calibrated static int8 + report
* ``quantize``           ONNX Runtime quantization: dynamic int8, static QDQ, MatMulNBits
* ``fallback``           SmoothQuant-style smoothing, node sensitivity ranking, float-fallback search
* ``verify``             error metrics, bounds, sessions, interleaved latency
* ``report``             the conversion report (detection and fallback sections included)
* ``sentence``           tokenizer.json + ONNX + pooling -> sentence embeddings (no torch)
* ``cpu_features``       int8 dot-product support (VNNI, ARM dotprod) and the warning without it
* ``models.mtcnn``       PNet/RNet/ONet module definitions for facenet-pytorch's state dicts
* ``cli``                ``edge-runtime convert ...`` (its ``--help`` lists the conversions)
* ``_io``                all-or-nothing output files
"""
