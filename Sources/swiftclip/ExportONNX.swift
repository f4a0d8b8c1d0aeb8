import ArgumentParser
import CLIPExport
import CLIPModels
import Foundation

extension ONNXTower: ExpressibleByArgument {}

struct ExportONNX: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-onnx",
        abstract: "Export the image or text tower to ONNX (weights as initializers; external data above ~2 GB).",
        discussion: """
        Image tower: input pixel_values float [batch, 3, S, S] (preprocessed, NCHW). Text tower: input
        input_ids int64 [batch, context_length]. Output: embedding float [batch, embed_dim] (not normalised).
        """)

    @OptionGroup var options: ModelOptions
    @Option(name: .long, help: "Which tower: image or text.") var tower: ONNXTower
    @Option(name: .long, help: "Output .onnx file (written to a temporary file, then renamed).") var output: String
    @Option(name: .long, help: "ONNX opset (13–21). Below 17, LayerNorm is decomposed into basic ops; GELU always uses Erf.")
    var opset: Int = 17
    @Option(name: .long, help: "Batch dimension: 'dynamic' (dim_param batch) or a fixed size.") var batch: String = "dynamic"
    @Option(name: .long, help: """
        fp32; fp16: weight matrices stored as float16 initializers, cast to float in the graph (half the file); \
        int8: what --precision int8 computes (int8 GEMM weights, rows quantised to uint8 per row; MatMulInteger).
        """)
    var precision: String = "fp32"

    func validate() throws {
        guard ONNXExportOptions.supportedOpsets.contains(opset) else {
            throw ValidationError(ONNXExportError.unsupportedOpset(opset).description)
        }
        do { _ = try ONNXExportOptions.Batch(parsing: batch) } catch { throw ValidationError("--batch: \(error)") }
        if case .fixed(let n)? = try? ONNXExportOptions.Batch(parsing: batch) { try requireOption(n, in: OptionLimits.batchSize, "--batch") }
        try requireNonEmptyPaths([(output, "--output")])
        guard ONNXWeightFormat(rawValue: precision) != nil else {
            throw ValidationError("--precision must be fp32, fp16 or int8 (bf16 export is not implemented), got '\(precision)'")
        }
    }

    func run() throws {
        try runReportingErrors {
            let model = try CLIPModel(model: options.model, weightsURL: options.weightsURL, seed: options.seed)
            let exportOptions = ONNXExportOptions(opset: opset, batch: try ONNXExportOptions.Batch(parsing: batch),
                                                  weights: ONNXWeightFormat(rawValue: precision) ?? .fp32)
            let url = URL(fileURLWithPath: output)
            let summary = try ONNXExporter(model: model, options: exportOptions).write(tower: tower, to: url)
            var line = "wrote \(output): \(tower.rawValue) tower, opset \(opset), batch \(batch), \(precision) weights, \(summary.nodeCount) nodes, "
                + "\(summary.initializerCount) initializers, \(summary.modelBytes) bytes"
            if let data = summary.externalDataURL { line += " + external data \(data.path) (\(summary.externalDataBytes) bytes)" }
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }
}
