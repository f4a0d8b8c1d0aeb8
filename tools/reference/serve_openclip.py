"""A minimal Python embedding server for side-by-side load figures with `swiftclip serve`:
open_clip behind FastAPI/uvicorn, the same routes and JSON shape as SwiftCLIP's
`/v1/embeddings/image` (raw image/jpeg or image/png body) and `/v1/embeddings/text` ({"texts": [...]}).
One request per forward pass (what a plain FastAPI wrapper does); torch on the CPU.

Usage: serve_openclip.py [--model convnext_v2_tiny] [--seed 0] [--port 8090] [--threads 2]
"""
import argparse
import io
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI, HTTPException, Request  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from PIL import Image  # noqa: E402

import open_clip  # noqa: E402
from _common import create_model  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="convnext_v2_tiny")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model = create_model(a.model, seed=a.seed)
    size = model.visual.image_size if hasattr(model.visual, "image_size") else 224
    size = size[0] if isinstance(size, (tuple, list)) else size
    preprocess = open_clip.image_transform(size, is_train=False)
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    app = FastAPI()

    def respond(features):
        features = torch.nn.functional.normalize(features, dim=-1)
        return JSONResponse({"model": a.model, "dimensions": features.shape[1], "encoding": "float", "normalized": True,
                             "data": [{"index": i, "embedding": row} for i, row in enumerate(features.tolist())]})

    @app.post("/v1/embeddings/image")
    async def embed_image(request: Request):
        body = await request.body()
        try:
            image = Image.open(io.BytesIO(body)).convert("RGB")
        except Exception as e:  # noqa: BLE001
            raise HTTPException(400, f"invalid image: {e}")
        pixels = preprocess(image).unsqueeze(0)
        with torch.inference_mode():
            return respond(model.encode_image(pixels))

    @app.post("/v1/embeddings/text")
    async def embed_text(request: Request):
        texts = (await request.json()).get("texts") or []
        if not texts:
            raise HTTPException(400, "texts is empty")
        with torch.inference_mode():
            return respond(model.encode_text(tokenizer(texts)))

    @app.get("/ready")
    def ready():
        return {"ready": True}

    # Warm up as swiftclip serve does before /ready.
    with torch.inference_mode():
        model.encode_image(torch.zeros(1, 3, size, size))
        model.encode_text(tokenizer(["a photo"]))
    print(f"listening on http://127.0.0.1:{a.port}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=a.port, log_level="warning", workers=1)


if __name__ == "__main__":
    main()
