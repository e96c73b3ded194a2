using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.IntegrationTests.Fixtures;

/// <summary>Rows that tests write straight into a database, filled as the API fills them.</summary>
public static class TestRows
{
    /// <summary>An image row named by one letter or more: its key, hash and file name derive from <paramref name="name"/>.</summary>
    public static StoredImage Image(string name, DateTime createdAt) => new()
    {
        Id = Guid.NewGuid(),
        ObjectKey = $"sha256/{name}{name}/{name}",
        ContentHash = new string(name[0], 64),
        SizeBytes = 1234,
        ContentType = "image/jpeg",
        FileName = $"{name}.jpg",
        Format = "jpeg",
        Width = 640,
        Height = 480,
        CreatedAt = createdAt,
    };
}
