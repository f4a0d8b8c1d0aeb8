import ArgumentParser
import CLIPData
import CLIPEngine
import CLIPEvaluation
import CLIPModels
import Foundation

struct Classify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Zero-shot classification: softmax over labels of exp(logit_scale) · cos(image, text).",
        discussion: "Each label's text embedding averages the normalised embeddings of its templates, as open_clip does.")

    @OptionGroup var options: ModelOptions
    @OptionGroup var precisionOption: PrecisionOption
    @OptionGroup var vocabulary: VocabularyOptions
    @Option(name: .long, help: "Comma-separated class names.") var labels: String
    @Option(name: .long, help: "Prompt template; repeat for several ('{}' is the class name).") var template: [String] = ["a photo of a {}."]
    @Flag(name: .long, help: "JSON output for scripts.") var json = false
    @OptionGroup var source: ImageSourceOptions

    /// The class names; each at most once (the output is keyed by them).
    private var names: [String] { labels.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }

    func validate() throws {
        if let twice = names.firstRepeated() { throw ValidationError("--labels: '\(twice)' is given twice (got '\(labels)')") }
    }

    func run() throws {
        try runReportingErrors {
            let names = self.names
            let model = try CLIPModel(model: options.model, weightsURL: options.weightsURL, seed: options.seed,
                                      precision: precisionOption.precision, inferenceOnly: true)
            try requireTokenizerFits(model.config)
            let classifier = try ZeroShotClassifier(model: model, tokenizer: vocabulary.tokenizer(), classNames: names, templates: template)
            let inputs = try ImageInputs(source.paths(), preprocessor: Preprocessor(model: model.config), batchSize: 32)
            var rowNames: [String] = [], probabilities: [[Float]] = []
            let failed = try inputs.forEachEmbedding(model, normalize: false, label: "classifying images") { features, names in
                probabilities += try classifier.probabilities(imageFeatures: features)
                rowNames += names
            }
            if json {
                let rows: [[String: Any]] = zip(rowNames, probabilities).map { name, p in
                    let best = p.indices.max { p[$0] < p[$1] }!
                    return ["image": name, "label": names[best],
                            "probabilities": Dictionary(uniqueKeysWithValues: zip(names, p.map(Double.init)))]
                }
                let data = try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                let width = max(5, rowNames.map(\.count).max() ?? 0)
                let columns = names.map { max($0.count, 6) }
                print("image".padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                      + zip(names, columns).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ") + "  best")
                for (name, p) in zip(rowNames, probabilities) {
                    let best = p.indices.max { p[$0] < p[$1] }!
                    let cells = zip(p, columns).map { String(format: "%.4f", $0).padding(toLength: $1, withPad: " ", startingAt: 0) }
                    print(name.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + cells.joined(separator: "  ") + "  " + names[best])
                }
            }
            if failed > 0 { throw ExitCode.failure }
        }
    }
}
