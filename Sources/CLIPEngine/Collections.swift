extension Sequence where Element: Hashable {
    /// The first element that appeared before. Results are reported by label (`classify`, the
    /// server's routes, detection), so a label list with one is refused; this finds it.
    public func firstRepeated() -> Element? {
        var seen = Set<Element>()
        return first { !seen.insert($0).inserted }
    }
}
