using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using WasteClassifier.Api.Apis;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Components.Models;
using WasteClassifier.Components.Training;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Persistence;

/// <summary>POST /v1/samples on the real PostgreSQL: labelled images saved as samples, no job queued (the SQLite cases are unit tests).</summary>
public sealed class SampleUploadTests
{
    [IntegrationFact]
    public async Task Upload_OnPostgres_201SamplesListedAndNoJobQueued()
    {
        var root = Directory.CreateTempSubdirectory("wc-sample-upload-");
        using var services = new ServiceCollection().AddLogging()
            .ConfigureHttpJsonOptions(json => json.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower).BuildServiceProvider();
        try
        {
            await ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Postgres, "wc-sample-upload", async newContext =>
            {
                await using var db = newContext();
                var store = new FileSystemObjectStore(root.FullName);
                var registry = new ModelRegistry(db, store, publisher: null!, new ModelOptions(), TimeProvider.System, NullLogger<ModelRegistry>.Instance);
                var submitter = new TrainingJobSubmitter(db, new ImageIntake(db, store, new UploadOptions(), new SeenContentHashes(), TimeProvider.System), registry,
                    new RefusingSendEndpoints(), new Infrastructure.Messaging.MessagingOptions(), new TrainingSettings(), TimeProvider.System,
                    NullLogger<TrainingJobSubmitter>.Instance);
                using var content = new MultipartFormDataContent
                {
                    { new ByteArrayContent(Png(1)), TrainingJobsApi.ImagesField, "a.png" },
                    { new ByteArrayContent(Png(2)), TrainingJobsApi.ImagesField, "b.png" },
                    { new StringContent("glass"), "labels" },
                    { new StringContent("metal"), "labels" },
                };
                var context = new DefaultHttpContext { RequestServices = services };
                context.Request.ContentType = content.Headers.ContentType!.ToString();
                context.Request.Body = new MemoryStream(await content.ReadAsByteArrayAsync());

                var result = await SamplesApi.UploadAsync(context.Request, submitter, new UploadOptions(), CancellationToken.None);

                using var response = new MemoryStream();
                context.Response.Body = response;
                await result.ExecuteAsync(context);
                Assert.Equal(StatusCodes.Status201Created, context.Response.StatusCode);
                var items = JsonNode.Parse(response.ToArray())!["items"]!.AsArray();
                Assert.Equal(["glass", "metal"], items.Select(i => i!["label"]!.GetValue<string>()));
                await using var check = newContext();
                Assert.False(await check.TrainingJobs.AnyAsync());
                var page = Assert.IsType<Ok<SamplesApi.SamplePage>>(await SamplesApi.ListAsync(check, label: null, trainingJobId: null, limit: null, cursor: null,
                    CancellationToken.None));
                Assert.Equal(items.Select(i => i!["id"]!.GetValue<Guid>()).Order(), page.Value!.Items.Select(s => s.Id).Order());
                Assert.All(page.Value.Items, s => Assert.Equal((SampleOrigin.Upload, (Guid?)null), (s.Origin, s.TrainingJobId)));
            });
        }
        finally
        {
            root.Delete(recursive: true);
        }
    }

    private static byte[] Png(byte shade)
    {
        using var image = new Image<Rgb24>(16, 16, new Rgb24(shade, 90, 200));
        using var bytes = new MemoryStream();
        image.SaveAsPng(bytes);
        return bytes.ToArray();
    }
}
