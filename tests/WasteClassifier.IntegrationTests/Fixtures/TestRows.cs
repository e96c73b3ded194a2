using Microsoft.Extensions.DependencyInjection;
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

    /// <summary>
    /// A classification that stays queued, in <paramref name="services"/>' database: recorded as sent, so the re-publisher
    /// leaves it be for minutes, and a long poll of it is held for its whole wait.
    /// </summary>
    public static async Task<Guid> QueuedClassificationAsync(IServiceProvider services, string imageName)
    {
        using var scope = services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var image = Image(imageName, DateTime.UtcNow);
        var row = new Classification
        {
            Id = Guid.CreateVersion7(),
            ImageId = image.Id,
            Image = image,
            Status = ClassificationStatus.Queued,
            CreatedAt = DateTime.UtcNow,
            PublishedAt = DateTime.UtcNow,
        };
        db.Classifications.Add(row);
        await db.SaveChangesAsync();
        return row.Id;
    }
}
