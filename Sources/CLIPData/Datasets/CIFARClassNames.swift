/// Class names and prompt templates for CIFAR as CLIP_benchmark uses them
/// (clip_benchmark/datasets/cifar10.py and cifar100.py, after OpenAI CLIP's `data/prompts.md`).
public enum CIFARClassNames {
    public static let cifar10 = [
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    ]

    /// The CIFAR-100 fine label names in label order, underscores as spaces ("aquarium fish").
    public static let cifar100 = [
        "apple", "aquarium fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
        "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
        "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
        "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
        "lamp", "lawn mower", "leopard", "lion", "lizard", "lobster", "man", "maple tree", "motorcycle",
        "mountain", "mouse", "mushroom", "oak tree", "orange", "orchid", "otter", "palm tree", "pear",
        "pickup truck", "pine tree", "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon",
        "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail",
        "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet pepper", "table", "tank", "telephone",
        "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
        "willow tree", "wolf", "woman", "worm",
    ]

    /// The 18 templates CLIP_benchmark uses for CIFAR-10 and CIFAR-100 ("{}" is the class name).
    public static let templates = [
        "a photo of a {}.", "a blurry photo of a {}.", "a black and white photo of a {}.",
        "a low contrast photo of a {}.", "a high contrast photo of a {}.", "a bad photo of a {}.",
        "a good photo of a {}.", "a photo of a small {}.", "a photo of a big {}.", "a photo of the {}.",
        "a blurry photo of the {}.", "a black and white photo of the {}.", "a low contrast photo of the {}.",
        "a high contrast photo of the {}.", "a bad photo of the {}.", "a good photo of the {}.",
        "a photo of the small {}.", "a photo of the big {}.",
    ]
}
