using System.Net;
using System.Net.Http.Headers;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Embedded;

/// <summary>
/// The generated bad-input corpus through the API and straight through the queue: every file is refused with a code or
/// ends completed/failed with a reason. The whole corpus in one batch, with the process's memory measured, is in
/// <see cref="BadInputCorpusBatchTests"/>.
/// </summary>
[Collection(EmbeddedCollection.Name)]
public sealed class BadInputCorpusTests(EmbeddedApiFixture fixture)
{
    public static TheoryData<string> Entries => new(BadImageCorpus.Create().Select(e => e.Name));

    [Theory]
    [MemberData(nameof(Entries))]
    public async Task Api_CorpusFile_RefusedWithCodeOrFinishedWithReason(string name)
    {
        var entry = BadImageCorpus.Create().Single(e => e.Name == name);
        using var form = new MultipartFormDataContent();
        var part = new ByteArrayContent(entry.Content);
        part.Headers.ContentType = new MediaTypeHeaderValue(entry.ContentType);
        form.Add(part, "image", entry.FileName);
        var response = await fixture.Client.Http.PostAsync("/v1/classifications", form);
        var body = await ClassifierClient.ReadJsonAsync(response);

        if (entry.RefusedWith is not null)
        {
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.True(entry.RefusedWith == body["error"]!.GetValue<string>(), body.ToJsonString());
            Assert.False(string.IsNullOrWhiteSpace(body["message"]!.GetValue<string>()));
            return;
        }
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, body.ToJsonString());
        var id = Guid.Parse(body["items"]![0]!["id"]!.GetValue<string>());
        var row = (await fixture.Client.WaitForAllAsync([id], TimeSpan.FromMinutes(1)))[0];
        var status = row["status"]!.GetValue<string>();
        Assert.Contains(status, new[] { "completed", "failed" });
        if (status == "failed")
        {
            Assert.False(string.IsNullOrWhiteSpace(row["error_code"]?.GetValue<string>()));
            Assert.False(string.IsNullOrWhiteSpace(row["error"]?.GetValue<string>()));
        }
        else Assert.NotNull(row["predicted_class"]?.GetValue<string>());
    }

    [Fact]
    public async Task Api_HostileFileNames_StoredSanitised()
    {
        var image = File.ReadAllBytes(Dataset.Sample(perClass: 1)[2].Path);
        string[] names = ["../../etc/passwd.jpg", "..\\..\\windows\\system32\\evil.jpg", "tab\tand\u0001ctrl\u007f.jpg", "/abs/path/x.jpg", "....jpg"];
        var (response, body) = await fixture.Client.SubmitAsync(names.Select(n => (n, image)));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var returned = body["items"]!.AsArray().Select(i => i!["filename"]?.GetValue<string>()).ToList();
        Assert.Equal(["passwd.jpg", "evil.jpg", "tabandctrl.jpg", "x.jpg", "jpg"], returned);

        using var scope = fixture.Factory.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var ids = body["items"]!.AsArray().Select(i => Guid.Parse(i!["id"]!.GetValue<string>())).ToList();
        var rows = await db.Classifications.Include(c => c.Image).Where(c => ids.Contains(c.Id)).ToListAsync();
        Assert.All(rows, r =>
        {
            Assert.StartsWith("sha256/", r.Image!.ObjectKey); // the object key is the content hash, never the client's name
            Assert.DoesNotContain('/', r.Image.FileName ?? "");
            Assert.DoesNotContain('\\', r.Image.FileName ?? "");
            Assert.DoesNotContain((r.Image.FileName ?? "").ToCharArray(), char.IsControl);
        });
    }

    [Fact]
    public async Task Api_AThousandFilesInOneRequest_400TooManyFilesNothingStored()
    {
        var tiny = new byte[16];
        var (response, body) = await fixture.Client.SubmitAsync(Enumerable.Range(0, 1000).Select(i => ($"{i}.jpg", tiny)));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("too_many_files", body["error"]!.GetValue<string>());
    }
}
