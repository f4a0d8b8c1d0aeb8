/// The OpenAPI 3.1 description of every route the server registers (`OpenAPITests` checks both
/// directions). Served at `/openapi.json`; schemathesis fuzzes the server from it.
enum OpenAPIDocument {
    static let json = #"""
{
  "openapi": "3.1.0",
  "info": {
    "title": "SwiftCLIP serve",
    "version": "1.0.0",
    "description": "CLIP embeddings, zero-shot classification and search. Errors are {\"error\": {\"code\", \"message\"}}. With --token, every route but GET / and GET /health needs 'Authorization: Bearer <token>'."
  },
  "components": {
    "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
    "schemas": {
      "Error": {
        "type": "object", "required": ["error"],
        "properties": { "error": { "type": "object", "required": ["code", "message"],
          "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } }
      },
      "Embeddings": {
        "type": "object", "required": ["model", "dimensions", "encoding", "normalized", "data"],
        "properties": {
          "model": { "type": "string" },
          "dimensions": { "type": "integer" },
          "encoding": { "type": "string", "enum": ["float", "base64"] },
          "normalized": { "type": "boolean" },
          "data": { "type": "array", "items": { "type": "object", "required": ["index", "embedding"],
            "properties": { "index": { "type": "integer" },
              "embedding": { "oneOf": [ { "type": "array", "items": { "type": "number" } },
                                        { "type": "string", "description": "base64 of little-endian float32" } ] } } } }
        }
      }
    },
    "responses": {
      "BadRequest": { "description": "invalid input", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "Unauthorized": { "description": "missing or wrong bearer token", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "TooLarge": { "description": "body or image over the limits", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "Timeout": { "description": "the body did not arrive in time", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "UnsupportedMediaType": { "description": "wrong Content-Type", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "Unavailable": { "description": "model not ready, queue full (Retry-After) or shutting down", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "DeadlineExceeded": { "description": "the request waited past its deadline", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
    },
    "parameters": {
      "encoding": { "name": "encoding", "in": "query", "required": false, "schema": { "type": "string", "enum": ["float", "base64"], "default": "float" } },
      "normalize": { "name": "normalize", "in": "query", "required": false, "schema": { "type": "string", "enum": ["true", "false"], "default": "true" } }
    }
  },
  "security": [ { "bearer": [] } ],
  "paths": {
    "/": {
      "get": { "summary": "The search page (HTML, CSS and JavaScript from the binary)", "security": [],
        "responses": { "200": { "description": "HTML", "content": { "text/html": { "schema": { "type": "string" } } } } } }
    },
    "/health": {
      "get": { "summary": "Liveness: the process answers", "security": [],
        "responses": { "200": { "description": "alive", "content": { "application/json": { "schema": { "type": "object", "properties": { "status": { "type": "string" } } } } } } } }
    },
    "/ready": {
      "get": { "summary": "Readiness: 200 once the model is loaded and warmed by one forward pass",
        "responses": { "200": { "description": "ready", "content": { "application/json": { "schema": { "type": "object", "properties": { "ready": { "type": "boolean" } } } } } },
                       "401": { "$ref": "#/components/responses/Unauthorized" },
                       "503": { "$ref": "#/components/responses/Unavailable" } } }
    },
    "/metrics": {
      "get": { "summary": "Prometheus metrics: requests and latency by route and status, batch sizes, queue depth",
        "responses": { "200": { "description": "Prometheus text format", "content": { "text/plain": { "schema": { "type": "string" } } } },
                       "401": { "$ref": "#/components/responses/Unauthorized" } } }
    },
    "/openapi.json": {
      "get": { "summary": "This document",
        "responses": { "200": { "description": "OpenAPI 3.1", "content": { "application/json": { "schema": { "type": "object" } } } },
                       "401": { "$ref": "#/components/responses/Unauthorized" } } }
    },
    "/v1/embeddings/image": {
      "post": { "summary": "Image embeddings: one image as the body, or several as multipart/form-data (parts with a filename or an image/* type)",
        "parameters": [ { "$ref": "#/components/parameters/encoding" }, { "$ref": "#/components/parameters/normalize" } ],
        "requestBody": { "required": true, "content": {
          "image/jpeg": { "schema": { "type": "string", "format": "binary" } },
          "image/png": { "schema": { "type": "string", "format": "binary" } },
          "application/octet-stream": { "schema": { "type": "string", "format": "binary" }, "description": "a JPEG or PNG file (also with no Content-Type)" },
          "multipart/form-data": { "schema": { "type": "object", "properties": { "image": { "type": "array", "items": { "type": "string", "format": "binary" } } } } } } },
        "responses": { "200": { "description": "one embedding per image, in order", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Embeddings" } } } },
                       "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" },
                       "408": { "$ref": "#/components/responses/Timeout" }, "413": { "$ref": "#/components/responses/TooLarge" },
                       "415": { "$ref": "#/components/responses/UnsupportedMediaType" },
                       "503": { "$ref": "#/components/responses/Unavailable" }, "504": { "$ref": "#/components/responses/DeadlineExceeded" } } }
    },
    "/v1/embeddings/text": {
      "post": { "summary": "Text embeddings (tokenised as open_clip.tokenize does)",
        "requestBody": { "required": true, "content": { "application/json": { "schema": {
          "type": "object", "required": ["texts"],
          "properties": { "texts": { "type": "array", "minItems": 1, "maxItems": 256, "items": { "type": "string", "maxLength": 2000 } },
                          "encoding": { "type": "string", "enum": ["float", "base64"] }, "normalize": { "type": "boolean" } } } } } },
        "responses": { "200": { "description": "one embedding per text, in order", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Embeddings" } } } },
                       "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" },
                       "408": { "$ref": "#/components/responses/Timeout" }, "413": { "$ref": "#/components/responses/TooLarge" },
                       "415": { "$ref": "#/components/responses/UnsupportedMediaType" },
                       "503": { "$ref": "#/components/responses/Unavailable" }, "504": { "$ref": "#/components/responses/DeadlineExceeded" } } }
    },
    "/v1/search": {
      "post": { "summary": "Search the index (--db) by a text or an image: results best first, with their image and thumbnail URLs",
        "requestBody": { "required": true, "content": { "application/json": { "schema": {
          "type": "object",
          "properties": { "text": { "type": "string", "maxLength": 2000 }, "image": { "type": "string", "contentEncoding": "base64", "description": "JPEG or PNG file, base64" },
                          "top_k": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 24 },
                          "min_score": { "type": "number", "description": "cosine cut-off" } },
          "description": "exactly one of text and image" } } } },
        "responses": { "200": { "description": "results", "content": { "application/json": { "schema": {
                          "type": "object", "properties": { "model": { "type": "string" },
                            "results": { "type": "array", "items": { "type": "object", "properties": {
                              "id": { "type": "integer" }, "path": { "type": "string" }, "score": { "type": "number" }, "rank": { "type": "integer" },
                              "image": { "type": "string" }, "thumbnail": { "type": "string" } } } } } } } } },
                       "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" },
                       "404": { "description": "no index (--db) given", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                       "408": { "$ref": "#/components/responses/Timeout" }, "413": { "$ref": "#/components/responses/TooLarge" },
                       "415": { "$ref": "#/components/responses/UnsupportedMediaType" },
                       "503": { "$ref": "#/components/responses/Unavailable" }, "504": { "$ref": "#/components/responses/DeadlineExceeded" } } }
    },
    "/v1/images/{id}": {
      "get": { "summary": "The indexed image file of a search result",
        "parameters": [ { "name": "id", "in": "path", "required": true, "schema": { "type": "integer", "minimum": 1 } } ],
        "responses": { "200": { "description": "the file", "content": { "image/jpeg": { "schema": { "type": "string", "format": "binary" } }, "image/png": { "schema": { "type": "string", "format": "binary" } } } },
                       "401": { "$ref": "#/components/responses/Unauthorized" },
                       "404": { "description": "no such image, or no index", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                       "503": { "$ref": "#/components/responses/Unavailable" } } }
    },
    "/v1/images/{id}/thumbnail": {
      "get": { "summary": "A 256 x 256 PNG thumbnail (centre crop, turned upright by a JPEG's EXIF orientation) of an indexed image",
        "parameters": [ { "name": "id", "in": "path", "required": true, "schema": { "type": "integer", "minimum": 1 } } ],
        "responses": { "200": { "description": "PNG", "content": { "image/png": { "schema": { "type": "string", "format": "binary" } } } },
                       "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" },
                       "404": { "description": "no such image, or no index", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                       "413": { "$ref": "#/components/responses/TooLarge" },
                       "503": { "$ref": "#/components/responses/Unavailable" } } }
    },
    "/v1/detect": {
      "post": { "summary": "Open-vocabulary detection as `swiftclip detect --json` (needs --detector): boxes in the original image's pixels, best first, in Hugging Face's zero-shot-object-detection shape",
        "parameters": [
          { "name": "labels", "in": "query", "required": false, "schema": { "type": "string" }, "description": "comma-separated (raw image body)" },
          { "name": "threshold", "in": "query", "required": false, "schema": { "type": "number", "minimum": 0, "maximum": 1, "default": 0.1 } },
          { "name": "top_k", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } } ],
        "requestBody": { "required": true, "content": {
          "image/jpeg": { "schema": { "type": "string", "format": "binary" } },
          "image/png": { "schema": { "type": "string", "format": "binary" } },
          "application/octet-stream": { "schema": { "type": "string", "format": "binary" }, "description": "a JPEG or PNG file (also with no Content-Type)" },
          "multipart/form-data": { "schema": { "type": "object", "required": ["image", "labels"],
            "properties": { "image": { "type": "string", "format": "binary" }, "labels": { "type": "string", "description": "comma-separated" },
                            "threshold": { "type": "string" }, "top_k": { "type": "string" } } } },
          "application/json": { "schema": { "type": "object", "required": ["image", "labels"],
            "properties": { "image": { "type": "string", "contentEncoding": "base64", "description": "JPEG or PNG file, base64" },
                            "labels": { "type": "array", "minItems": 1, "items": { "type": "string" } },
                            "threshold": { "type": "number", "minimum": 0, "maximum": 1 }, "top_k": { "type": "integer", "minimum": 1, "maximum": 1000 } } } } } },
        "responses": { "200": { "description": "detections", "content": { "application/json": { "schema": {
                          "type": "array", "items": { "type": "object", "required": ["score", "label", "box"],
                            "properties": { "score": { "type": "number" }, "label": { "type": "string" },
                              "box": { "type": "object", "required": ["xmin", "ymin", "xmax", "ymax"], "properties": {
                                "xmin": { "type": "number" }, "ymin": { "type": "number" }, "xmax": { "type": "number" }, "ymax": { "type": "number" } } } } } } } } },
                       "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" },
                       "404": { "description": "no detector (--detector) given", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                       "408": { "$ref": "#/components/responses/Timeout" }, "413": { "$ref": "#/components/responses/TooLarge" },
                       "415": { "$ref": "#/components/responses/UnsupportedMediaType" },
                       "503": { "$ref": "#/components/responses/Unavailable" }, "504": { "$ref": "#/components/responses/DeadlineExceeded" } } }
    },
    "/v1/classify": {
      "post": { "summary": "Zero-shot classification as `swiftclip classify`: labels sorted by probability",
        "parameters": [
          { "name": "labels", "in": "query", "required": false, "schema": { "type": "string" }, "description": "comma-separated (raw image body)" },
          { "name": "template", "in": "query", "required": false, "schema": { "type": "string" }, "description": "with '{}' for the label (raw image body)" } ],
        "requestBody": { "required": true, "content": {
          "image/jpeg": { "schema": { "type": "string", "format": "binary" } },
          "image/png": { "schema": { "type": "string", "format": "binary" } },
          "application/octet-stream": { "schema": { "type": "string", "format": "binary" }, "description": "a JPEG or PNG file (also with no Content-Type)" },
          "application/json": { "schema": { "type": "object", "required": ["image", "labels"],
            "properties": { "image": { "type": "string", "contentEncoding": "base64", "description": "JPEG or PNG file, base64" },
                            "labels": { "type": "array", "minItems": 1, "items": { "type": "string" } },
                            "templates": { "type": "array", "items": { "type": "string" }, "description": "each with '{}' for the label; default 'a photo of a {}.'" } } } },
          "multipart/form-data": { "schema": { "type": "object", "required": ["image", "labels"],
            "properties": { "image": { "type": "string", "format": "binary" }, "labels": { "type": "string", "description": "comma-separated" },
                            "template": { "type": "string" } } } } } },
        "responses": { "200": { "description": "labels by probability", "content": { "application/json": { "schema": {
                          "type": "object", "properties": { "model": { "type": "string" },
                            "labels": { "type": "array", "items": { "type": "object", "properties": { "label": { "type": "string" }, "probability": { "type": "number" } } } } } } } } },
                       "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" },
                       "408": { "$ref": "#/components/responses/Timeout" }, "413": { "$ref": "#/components/responses/TooLarge" },
                       "415": { "$ref": "#/components/responses/UnsupportedMediaType" },
                       "503": { "$ref": "#/components/responses/Unavailable" }, "504": { "$ref": "#/components/responses/DeadlineExceeded" } } }
    }
  }
}
"""#
}
