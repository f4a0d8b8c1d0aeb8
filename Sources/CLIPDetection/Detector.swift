import CLIPData
import CLIPEngine
import CLIPModels
import CLIPTokenizer
import Foundation

/// One detection in Hugging Face's `zero-shot-object-detection` pipeline shape:
/// `{"score", "label", "box": {"xmin", "ymin", "xmax", "ymax"}}`, in pixels of the original image.
public struct Detection: Codable, Equatable, Sendable {
    public struct PixelBox: Codable, Equatable, Sendable {
        public var xmin: Double, ymin: Double, xmax: Double, ymax: Double
    }
    public var score: Double
    public var label: String
    public var box: PixelBox

    public init(score: Double, label: String, box: Box) {
        self.score = score; self.label = label
        self.box = PixelBox(xmin: box.x0, ymin: box.y0, xmax: box.x1, ymax: box.y1)
    }
    public var asBox: Box { Box(x0: box.xmin, y0: box.ymin, x1: box.xmax, y1: box.ymax) }
}

/// Open-vocabulary detection as F-VLM does it on a frozen CLIP ConvNeXt: the class-agnostic box
/// head proposes boxes (objectness, NMS), each box gets a CLIP region embedding (by default the
/// image masked outside the box and re-encoded; F-VLM's RoI-align on the frozen map is
/// `regionEmbedding = .roiAlign`), and a box's score for a label is
/// objectness × p_inVocab^(1−w) · p_CLIP^w, the geometric-mean blend of the head's embedding score
/// and the CLIP region score, w = `baseWeight` for labels the head was trained on and `novelWeight`
/// for the others (F-VLM: 0.35 and 0.65). Both probabilities are softmaxes over the queried labels.
public struct OpenVocabularyDetector {
    public enum Scoring: String, Codable, Sendable, CaseIterable {
        /// F-VLM's blend (above).
        case blend
        /// Detic-style: the head's embedding classifier alone, no CLIP region score.
        case inVocabulary
        /// The CLIP region score alone.
        case clipRegion
    }

    public struct Options: Sendable {
        public var threshold = 0.1
        public var topK = 100
        public var nmsIoU = 0.5
        /// Boxes kept after class-agnostic NMS, before they are classified.
        public var proposals = 100
        public var minimumObjectness = 0.01
        public var baseWeight = 0.35, novelWeight = 0.65
        public var scoring = Scoring.blend
        /// One label per box (the best), as the HF pipeline; false gives every label above threshold (COCO evaluation).
        public var onePerBox = true
        /// Input side in pixels (the image is stretched to side × side); nil: the head's training size.
        public var imageSize: Int? = nil
        /// How each proposal's CLIP embedding is computed (`RegionEmbedding`): by default the image
        /// masked outside the box and re-encoded, the most accurate (docs/detection.md, "Default").
        public var regionEmbedding = RegionEmbedding.mask
        /// Side the region embedding sees: for `roiAlign` the input of a second backbone pass whose
        /// map is RoI-aligned (nil: the detector's own map); for `crop` and `mask` the side each box
        /// is encoded at (nil: CLIP's training size).
        public var regionInputSize: Int? = nil
        /// `crop` and `mask`: at most this many proposals (the highest objectness first, after NMS) are
        /// re-encoded by CLIP, in one batch; the others take the RoI-align embedding on the detector's
        /// own map (free). Each re-encoding is a whole CLIP image pass.
        public var encodedRegions = 10
        /// The CLIP region score's softmax scale (nil: CLIP's own exp(logit_scale)); lower is softer.
        public var clipScale: Double? = nil
        public var blendMean = BlendMean.geometric
        public init() {}
    }

    /// How the blend combines p_inVocab and p_CLIP with CLIP weight w.
    public enum BlendMean: String, Codable, Sendable, CaseIterable {
        /// F-VLM: p_iv^(1−w) · p_CLIP^w.
        case geometric
        /// (1−w) · p_iv + w · p_CLIP.
        case arithmetic

        public func callAsFunction(inVocabulary pv: Double, clip pc: Double, weight w: Double) -> Double {
            switch self {
            case .geometric: return Foundation.pow(pv, 1 - w) * Foundation.pow(pc, w)
            case .arithmetic: return (1 - w) * pv + w * pc
            }
        }
    }

    public let dense: DenseCLIP
    public let head: BoxHead
    /// Embeds the labels' prompts; nil when the caller passes text embeddings itself.
    public let tokenizer: CLIPTokenizer?
    public var model: CLIPModel { dense.model }

    public init(model: CLIPModel, head: BoxHead, tokenizer: CLIPTokenizer?) throws {
        dense = try DenseCLIP(model: model)
        let expected = dense.stageWidths[2] + dense.stageWidths[3]
        guard head.config.inputWidth == expected else {
            throw DetectionError.invalidArgument("box head expects \(head.config.inputWidth)-wide features; \(model.config.source) gives \(expected) (trained on another backbone?)")
        }
        guard head.config.embedDim == 0 || head.config.embedDim == model.config.embedDim else {
            throw DetectionError.invalidArgument("box head embeds in \(head.config.embedDim) dimensions; the CLIP model in \(model.config.embedDim)")
        }
        self.head = head
        self.tokenizer = tokenizer
    }

    /// The prompt a label is embedded with (the scene captions' wording: "a red circle").
    public static func prompt(_ label: String) -> String { "a \(label)" }

    /// A label list must be non-empty, without empty labels.
    public static func checkLabels(_ labels: [String]) throws {
        guard !labels.isEmpty else { throw DetectionError.invalidArgument("no labels to detect (the label list is empty)") }
        if let bad = labels.first(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            throw DetectionError.invalidArgument("empty label in the list ('\(bad)')")
        }
        if let twice = labels.firstRepeated() { throw DetectionError.invalidArgument("label '\(twice)' is given twice") }
    }

    /// Unit-length text embeddings [K, D] of the labels' prompts.
    public static func textEmbeddings(_ labels: [String], model: CLIPModel, tokenizer: CLIPTokenizer) throws -> Tensor {
        try checkLabels(labels)
        let rows = tokenizer.tokenize(labels.map(prompt), contextLength: model.config.text.contextLength).map { $0.map(Int.init) }
        return try model.encodeText(rows, normalize: true)
    }

    /// Detections in `image` for `labels`.
    public func detect(_ image: RGBImage, labels: [String], options: Options = Options()) throws -> [Detection] {
        let texts = try textEmbeddings(labels)
        return try detect(image, labels: labels, texts: texts, options: options)
    }

    /// Unit text embeddings of the labels with this detector's tokenizer.
    public func textEmbeddings(_ labels: [String]) throws -> Tensor {
        guard let tokenizer else { throw DetectionError.invalidArgument("this detector has no tokenizer: pass text embeddings") }
        return try Self.textEmbeddings(labels, model: model, tokenizer: tokenizer)
    }

    /// With the labels' text embeddings computed once (many images, one vocabulary).
    public func detect(_ image: RGBImage, labels: [String], texts: Tensor, options: Options) throws -> [Detection] {
        try detectCounting(image, labels: labels, texts: texts, options: options).detections
    }

    /// What one detection cost: proposals scored after NMS and the threshold, and how many of them
    /// CLIP re-encoded (`crop`, `mask`).
    public struct Work: Equatable, Sendable {
        public var scored = 0, encoded = 0
        public init(scored: Int = 0, encoded: Int = 0) { self.scored = scored; self.encoded = encoded }
    }

    /// `detect`, with the work it did.
    public func detectCounting(_ image: RGBImage, labels: [String], texts: Tensor, options: Options) throws -> (detections: [Detection], work: Work) {
        let side = options.imageSize ?? head.config.imageSize
        guard side >= 32, side <= 4096 else { throw DetectionError.invalidArgument("input size \(side) must be in 32...4096") }
        guard texts.rank == 2, texts.shape[0] == labels.count else { throw DetectionError.invalidArgument("\(labels.count) labels, \(texts.shape) text embeddings") }
        let input = try Preprocessor(imageSize: side).stretched(image).reshaped([1, 3, side, side])
        let stages = try dense.stages(input)
        let (stage3, stage4) = (stages[2], stages[3])
        let (gh, gw) = (stage3.shape[1], stage3.shape[2])
        let stride = Double(side) / Double(gw)
        let (out, _) = try head.forward(BoxHead.inputRows(stage3: stage3, stage4: stage4, image: 0))
        let width = head.outputWidth
        let o = out.scalars
        // Proposals: objectness, decoded boxes clipped to the input, class-agnostic NMS.
        var candidates: [(loc: Int, objectness: Double, box: Box)] = []
        for loc in 0..<(gh * gw) {
            let p = 1 / (1 + Foundation.exp(-Double(o[loc * width])))
            guard p >= options.minimumObjectness else { continue }
            let raw = (Double(o[loc * width + 1]), Double(o[loc * width + 2]), Double(o[loc * width + 3]), Double(o[loc * width + 4]))
            var b = DetectionLoss.decode(raw, location: loc, gridWidth: gw, stride: stride)
            b = Box(x0: max(0, b.x0), y0: max(0, b.y0), x1: min(Double(side), b.x1), y1: min(Double(side), b.y1))
            guard b.width >= 1, b.height >= 1 else { continue }
            candidates.append((loc, p, b))
        }
        candidates.sort { $0.objectness > $1.objectness }
        // A box's score is its objectness times a mean of probabilities, so never above its objectness:
        // boxes under the threshold cannot be reported and are not classified (nor re-encoded).
        let kept = Self.nms(candidates.map(\.box), iou: options.nmsIoU, limit: options.proposals).map { candidates[$0] }
            .filter { $0.objectness >= options.threshold }
        var work = Work(scored: kept.count)
        guard !kept.isEmpty else { return ([], work) }

        let k = labels.count
        let vocabulary = Set(head.config.vocabulary)
        let textRows = texts.scalars
        let sx = Double(image.width) / Double(side), sy = Double(image.height) / Double(side)
        // CLIP region scores: softmax over labels of CLIP's logit scale × cosine (not needed when the
        // head's own classifier is the score).
        var clipProbs: [Double] = []
        if options.scoring != .inVocabulary || head.config.embedDim == 0 {
            let regions = try regionEmbeddings(image: image, boxes: kept.map(\.box), side: side, stage4: stage4, options: options)
            work.encoded = regions.encoded
            clipProbs = Self.softmaxRows(Self.cosines(Ops.l2Normalize(regions.embeddings).scalars, textRows, dim: texts.shape[1]), k: k,
                                         scale: options.clipScale ?? Double(Foundation.exp(model.logitScale)))
        }
        var inVocab: [Double] = []
        if head.config.embedDim > 0 {
            let d = head.config.embedDim
            var e: [Float] = []
            for c in kept { e += o[(c.loc * width + 5)..<(c.loc * width + 5 + d)] }
            let normed = Ops.l2Normalize(try Tensor(shape: [kept.count, d], data: e)).scalars
            inVocab = Self.softmaxRows(Self.cosines(normed, textRows, dim: d), k: k, scale: head.config.logitScale)
        }
        var detections: [Detection] = []
        for (i, c) in kept.enumerated() {
            var scores = [Double](repeating: 0, count: k)
            for j in 0..<k {
                let pv = inVocab.isEmpty ? clipProbs[i * k + j] : inVocab[i * k + j], pc = clipProbs.isEmpty ? pv : clipProbs[i * k + j]
                let w = vocabulary.contains(labels[j]) ? options.baseWeight : options.novelWeight
                let cls: Double
                switch options.scoring {
                case .blend: cls = options.blendMean(inVocabulary: pv, clip: pc, weight: w)
                case .inVocabulary: cls = pv
                case .clipRegion: cls = pc
                }
                scores[j] = c.objectness * cls
            }
            let box = c.box.scaled(x: sx, y: sy)
            if options.onePerBox {
                if let j = scores.indices.max(by: { scores[$0] < scores[$1] }), scores[j] >= options.threshold {
                    detections.append(Detection(score: scores[j], label: labels[j], box: box))
                }
            } else {
                for j in 0..<k where scores[j] >= options.threshold { detections.append(Detection(score: scores[j], label: labels[j], box: box)) }
            }
        }
        detections.sort { $0.score > $1.score }
        return (Array(detections.prefix(options.topK)), work)
    }

    /// CLIP embeddings [M, embed_dim] of `boxes` (in pixels of the `side` × `side` input whose last
    /// stage map is `stage4`, best first), as `options.regionEmbedding` says; `encoded`: how many
    /// boxes CLIP re-encoded (`crop`, `mask`: the first `options.encodedRegions`; the others are
    /// RoI-aligned on `stage4`).
    public func regionEmbeddings(image: RGBImage, boxes: [Box], side: Int, stage4: Tensor, options: Options) throws -> (embeddings: Tensor, encoded: Int) {
        switch options.regionEmbedding {
        case .roiAlign:
            return (try roiAlignEmbeddings(image: image, boxes: boxes, side: side, stage4: stage4, options: options), 0)
        case .crop, .mask:
            let encodeSide = options.regionInputSize ?? model.config.vision.imageSize
            guard encodeSide >= 32, encodeSide <= 4096 else { throw DetectionError.invalidArgument("region input size \(encodeSide) must be in 32...4096") }
            guard options.encodedRegions >= 0 else { throw DetectionError.invalidArgument("encodedRegions \(options.encodedRegions) must not be negative") }
            let n = min(boxes.count, options.encodedRegions)
            let rest = boxes.count > n ? try dense.regionEmbeddings(lastStage: stage4, boxes: boxes[n...].map { (0, $0) }, inputSize: (side, side)) : nil
            guard n > 0 else { return (rest ?? Tensor(uninitializedShape: [0, model.config.embedDim]), 0) }
            let sx = Double(image.width) / Double(side), sy = Double(image.height) / Double(side)
            let encoded = try RegionEncoder.embeddings(model: model, image: image, boxes: boxes.prefix(n).map { $0.scaled(x: sx, y: sy) },
                                                       mode: options.regionEmbedding, side: encodeSide)
            guard let rest else { return (encoded, n) }
            return (try Tensor(shape: [boxes.count, model.config.embedDim], data: encoded.scalars + rest.scalars), n)
        }
    }

    /// F-VLM's region embeddings: RoI-align on `stage4`, or on a second backbone pass at `options.regionInputSize`.
    func roiAlignEmbeddings(image: RGBImage, boxes: [Box], side: Int, stage4: Tensor, options: Options) throws -> Tensor {
        guard let other = options.regionInputSize, other != side else {
            return try dense.regionEmbeddings(lastStage: stage4, boxes: boxes.map { (0, $0) }, inputSize: (side, side))
        }
        guard other >= 32, other <= 4096 else { throw DetectionError.invalidArgument("region input size \(other) must be in 32...4096") }
        let map = try dense.lastStage(try Preprocessor(imageSize: other).stretched(image).reshaped([1, 3, other, other]))
        let f = Double(other) / Double(side)
        return try dense.regionEmbeddings(lastStage: map, boxes: boxes.map { (0, $0.scaled(x: f, y: f)) }, inputSize: (other, other))
    }

    /// Greedy NMS over boxes already sorted by score: indices kept, at most `limit`.
    public static func nms(_ boxes: [Box], iou threshold: Double, limit: Int) -> [Int] {
        var kept: [Int] = []
        for (i, b) in boxes.enumerated() {
            if kept.count >= limit { break }
            if kept.allSatisfy({ boxes[$0].iou(b) <= threshold }) { kept.append(i) }
        }
        return kept
    }

    /// Row-major [M, K] cosines of unit rows a [M, dim] with unit rows t [K, dim].
    static func cosines(_ a: [Float], _ t: [Float], dim: Int) -> [Double] {
        let m = a.count / dim, k = t.count / dim
        var out = [Double](repeating: 0, count: m * k)
        for i in 0..<m { for j in 0..<k { var s = 0.0; for c in 0..<dim { s += Double(a[i * dim + c]) * Double(t[j * dim + c]) }; out[i * k + j] = s } }
        return out
    }

    static func softmaxRows(_ x: [Double], k: Int, scale: Double) -> [Double] {
        var out = x
        for r in 0..<(x.count / k) {
            let row = x[(r * k)..<(r * k + k)].map { $0 * scale }
            let m = row.max() ?? 0
            let e = row.map { Foundation.exp($0 - m) }
            let s = e.reduce(0, +)
            for j in 0..<k { out[r * k + j] = e[j] / s }
        }
        return out
    }
}
