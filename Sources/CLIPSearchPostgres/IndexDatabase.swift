import CLIPSearch

/// Opens an index wherever its location says: an SQLite file (`photos.sqlite`, `sqlite:PATH`) or a
/// PostgreSQL database with pgvector (`postgresql://user@host:port/db?options`, docs/search.md).
/// `SearchIndex.open` in `CLIPSearch` alone opens SQLite only, so that an app that needs no
/// PostgreSQL compiles none of postgres-nio.
public enum IndexDatabase {
    public static func open(_ location: String, readOnly: Bool = false) throws -> SearchIndex {
        try open(IndexLocation(parsing: location), readOnly: readOnly)
    }

    public static func open(_ location: IndexLocation, readOnly: Bool = false) throws -> SearchIndex {
        switch location {
        case .sqlite: return try SearchIndex(location: location, readOnly: readOnly)
        case .postgres(let url): return SearchIndex(location: location, store: try PostgresStore(url: url, readOnly: readOnly))
        }
    }
}
