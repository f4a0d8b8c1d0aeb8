import CLIPData
import CLIPModels

extension Preprocessor {
    /// open_clip's eval transform for `model`: its image size and its `preprocess_cfg` (mean, std,
    /// interpolation, resize_mode, fill_color), as `image_transform_v2` builds it.
    public init(model: CLIPConfig) {
        let p = model.preprocess
        func f(_ v: [Double]) -> (Float, Float, Float) { (Float(v[0]), Float(v[1]), Float(v[2])) }
        self.init(imageSize: model.vision.imageSize, mean: f(p.mean), std: f(p.std),
                  interpolation: Interpolation(rawValue: p.interpolation) ?? .bicubic,
                  resizeMode: ResizeMode(rawValue: p.resizeMode) ?? .shortest, fillColor: p.fillColor)
    }
}
