import ArgumentParser
import CLIPEngine
import CLIPModels
import Foundation

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a model's architecture summary and parameter counts.")

    @OptionGroup var options: ModelOptions
    @Flag(name: .long, help: "Machine-readable JSON output.") var json = false

    func run() throws {
        try runReportingErrors {
            let model = try CLIPModel(model: options.model, weightsURL: options.weightsURL, seed: options.seed)
            let counts = model.parameterCounts
            let c = model.config
            let vision: String
            switch c.vision {
            case .timm(let t): vision = "timm \(t.modelName), pool \(t.pool.isEmpty ? "(network default)" : t.pool), proj \(t.proj.isEmpty ? "(trunk head.fc)" : t.proj)"
            case .vit(let v): vision = "ViT width \(v.width), layers \(v.layers), heads \(v.heads), patch \(v.patchSize)"
            }
            if json {
                let object: [String: Any] = [
                    "model": options.model, "embed_dim": c.embedDim, "image_size": c.vision.imageSize,
                    "context_length": c.text.contextLength, "vocab_size": c.text.vocabSize, "vision": vision,
                    "params": ["visual": counts.visual, "text": counts.text, "total": counts.total],
                    "kernels": KernelLevel.active, "cpu_kernels": KernelLevel.cpuBest, "threads": Parallel.threadCount,
                ]
                let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print("model          \(options.model)")
                print("image tower    \(vision), image size \(c.vision.imageSize)")
                print("text tower     width \(c.text.width), layers \(c.text.layers), heads \(c.text.heads), context \(c.text.contextLength), vocab \(c.text.vocabSize)")
                print("embed dim      \(c.embedDim)\(c.quickGelu ? ", QuickGELU" : "")")
                print("params visual  \(grouped(counts.visual))")
                print("params text    \(grouped(counts.text))  (text tower + logit_scale)")
                print("params total   \(grouped(counts.total))")
                print("kernels        \(kernelDescription), \(Parallel.threadCount) threads")
            }
        }
    }
}

func grouped(_ n: Int) -> String {
    let s = String(n)
    var out = ""
    for (i, ch) in s.enumerated() {
        if i > 0 && (s.count - i) % 3 == 0 { out.append(",") }
        out.append(ch)
    }
    return out
}

/// "avx512bf16", or "avx2 (SWIFTCLIP_ISA; CPU: avx512bf16)" when capped.
var kernelDescription: String {
    var text = KernelLevel.active
    if KernelLevel.active != KernelLevel.cpuBest { text += " (capped by SWIFTCLIP_ISA; CPU: \(KernelLevel.cpuBest))" }
    if KernelLevel.requestIgnored { text += " (SWIFTCLIP_ISA not understood: use avx512bf16, avx512, avx2 or baseline)" }
    return text
}
