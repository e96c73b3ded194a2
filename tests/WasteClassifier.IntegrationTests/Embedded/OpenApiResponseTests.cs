using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Embedded;

/// <summary>
/// The response schemas of <c>/openapi/v1.json</c>: handlers returned anonymous objects through <c>IResult</c>, so the
/// document had no response bodies and a client generator got nothing.
/// </summary>
[Collection(EmbeddedCollection.Name)]
public sealed class OpenApiResponseTests(EmbeddedApiFixture fixture)
{
    private HttpClient Http => fixture.Client.Http;

    [Fact]
    public async Task OpenApi_EveryV1Operation_HasAJsonAnswerAndErrorsAsApiError()
    {
        var document = await DocumentAsync();
        var operations = Operations(document).Where(o => o.Path.StartsWith("/v1/", StringComparison.Ordinal)).ToList();
        Assert.True(operations.Count >= 20, $"only {operations.Count} operations under /v1");
        var apiErrorSchema = document["components"]?["schemas"]?["ApiError"];
        Assert.True(apiErrorSchema is not null, "no ApiError schema in components.schemas: no route declares an error");
        var apiError = (JsonObject)Resolve(document, apiErrorSchema);
        var errorFields = apiError["properties"]!.AsObject().Select(p => p.Key).ToList();
        Assert.Equal(["error", "message"], errorFields);

        foreach (var (path, method, operation) in operations)
        {
            var name = $"{method.ToUpperInvariant()} {path}";
            var responses = operation["responses"]!.AsObject();
            var answers = responses.Where(r => r.Key.StartsWith('2')).ToList();
            Assert.True(answers.Count > 0, $"{name} documents no 2xx answer");
            foreach (var (status, response) in answers)
            {
                if (status == "204") continue; // no body
                var schema = Resolve(document, JsonSchema(response!, $"{name} {status}"));
                Assert.True(schema["properties"] is JsonObject { Count: > 0 }, $"{name} {status}: the schema has no properties: {schema.ToJsonString()}");
            }
            var errors = responses.Where(r => r.Key[0] is '4' or '5').ToList();
            Assert.True(errors.Count > 0, $"{name} documents no error");
            foreach (var (status, response) in errors)
            {
                // ApiError itself, or one that adds to it (the refused files of a submission, the gate's decision).
                var schema = Resolve(document, JsonSchema(response!, $"{name} {status}"));
                var fields = schema["properties"]?.AsObject().Select(p => p.Key).ToList() ?? [];
                Assert.True(errorFields.All(fields.Contains), $"{name} {status}: the error schema lacks error/message: {schema.ToJsonString()}");
            }
        }
    }

    /// <summary>
    /// What the middleware in front of every route answers: 400 (a repeated or unbindable parameter), 421 (an unexpected
    /// Host), 429 and 503 with Retry-After, and 500 on every operation, the health probes' too; /predict's with success.
    /// Only what a route can answer: no 503 where nothing reads the database or object store (GET / and GET /health, which
    /// reports an outage in its body), and no 403 on a read (any valid key passes a read; only writes are refused as
    /// cross-site).
    /// </summary>
    [Fact]
    public async Task OpenApi_EveryOperation_DeclaresTheMiddlewaresErrors()
    {
        var document = await DocumentAsync();
        var operations = Operations(document).ToList();
        Assert.Contains(operations, o => o.Path == "/health/ready");
        foreach (var (path, method, operation) in operations)
        {
            var name = $"{method.ToUpperInvariant()} {path}";
            var responses = operation["responses"]!.AsObject();
            var internalError = Resolve(document, JsonSchema(responses["500"] ?? throw new Xunit.Sdk.XunitException($"{name}: no 500"), $"{name} 500"));
            var fields = internalError["properties"]!.AsObject().Select(p => p.Key).ToList();
            Assert.True(fields.Contains("error") && fields.Contains("message"), $"{name} 500: {internalError.ToJsonString()}");
            Assert.Equal(path == "/predict", fields.Contains("success"));
            // A write from another site's page is refused (403 cross_site_request) on every route, anonymous ones too.
            if (method != "get") Assert.True(responses["403"] is not null, $"{name} does not declare 403");
            else Assert.True(responses["403"] is null, $"{name} declares a 403 no read can answer");
            // The probes are outside the rate limit and the Host check, not outside RepeatedParameters.
            Assert.True(responses["400"] is not null, $"{name} does not declare 400");
            if (path.StartsWith("/health/", StringComparison.Ordinal)) continue;
            foreach (var status in new[] { "421", "429" })
                Assert.True(responses[status] is not null, $"{name} does not declare {status}");
            var outage = name is not ("GET /" or "GET /health");
            Assert.True(outage == (responses["503"] is not null), $"{name} {(outage ? "does not declare" : "declares")} 503");
            foreach (var status in outage ? new[] { "429", "503" } : ["429"])
                Assert.True(responses[status]!["headers"]?["Retry-After"]?["schema"]?["type"]?.GetValue<string>() == "integer",
                    $"{name} {status}: no Retry-After header: {responses[status]!.ToJsonString()}");
        }
    }

    /// <summary>The probes answer GET and HEAD only, and a repeated parameter with the 400 they declare.</summary>
    [Fact]
    public async Task OpenApi_HealthProbes_AnswerOnlyReadsAndDeclareTheir400()
    {
        var document = await DocumentAsync();
        await AssertDeclaredAsync(document, "/health/ready", "get", await Http.GetAsync("/health/ready?x=1&x=2"), HttpStatusCode.BadRequest);
        Assert.NotNull(document["paths"]?["/health/live"]?["head"]);
        using var head = new HttpRequestMessage(HttpMethod.Head, "/health/live");
        Assert.Equal(HttpStatusCode.OK, (await Http.SendAsync(head)).StatusCode);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await Http.PostAsync("/health/live", null)).StatusCode);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await Http.DeleteAsync("/health/ready")).StatusCode);
    }

    /// <summary>
    /// Every GET route answers HEAD (HeadRequests), and the document says so: beside each GET a HEAD with the same
    /// parameters, statuses and headers (Retry-After included), no bodies, and an operation id of its own. A real HEAD
    /// answers a status its operation declares.
    /// </summary>
    [Fact]
    public async Task OpenApi_EveryGet_ListsHeadWithTheSameStatusesAndNoBody()
    {
        var document = await DocumentAsync();
        var paths = document["paths"]!.AsObject();
        var gets = paths.Where(p => p.Value!["get"] is not null).ToList();
        Assert.True(gets.Count >= 15, $"only {gets.Count} GET routes");
        foreach (var (path, item) in gets)
        {
            var get = item!["get"]!;
            var head = item["head"];
            Assert.True(head is not null, $"GET {path} has no HEAD beside it");
            var responses = head["responses"]!.AsObject();
            Assert.Equal(get["responses"]!.AsObject().Select(r => r.Key), responses.Select(r => r.Key));
            foreach (var (status, response) in responses)
            {
                Assert.True(response!["content"] is null, $"HEAD {path} {status} has a body: {response.ToJsonString()}");
                Assert.Equal(get["responses"]![status]!["headers"]?.ToJsonString(), response["headers"]?.ToJsonString());
            }
            Assert.Equal(get["parameters"]?.ToJsonString(), head["parameters"]?.ToJsonString());
        }
        var ids = paths.SelectMany(p => p.Value!.AsObject()).Select(o => o.Value!["operationId"]?.GetValue<string>()).OfType<string>().ToList();
        Assert.Equal(ids.Distinct(), ids);
        Assert.Equal("ListModelsHead", paths["/v1/models"]!["head"]!["operationId"]!.GetValue<string>());

        // The status only: Kestrel drops a HEAD's body, the in-process test server does not.
        using var request = new HttpRequestMessage(HttpMethod.Head, "/v1/models");
        Assert.Equal(HttpStatusCode.OK, (await Http.SendAsync(request)).StatusCode);
        Assert.NotNull(paths["/v1/models"]!["head"]!["responses"]!["200"]);
    }

    /// <summary>A worker's status is a string whose values the document lists, so a generated client can type it.</summary>
    [Fact]
    public async Task OpenApi_WorkerStatus_ListsItsValues()
    {
        var document = await DocumentAsync();
        var status = document["components"]!["schemas"]!["WorkerView"]!["properties"]!["status"]!;

        Assert.Equal(["up", "missing", "stopped"], status["enum"]!.AsArray().Select(v => v!.GetValue<string>()));
    }

    /// <summary>The anonymous upload URL refuses a write from another site's page with the 403 it declares.</summary>
    [Fact]
    public async Task OpenApi_CrossSiteWrite_AnswersTheDeclared403()
    {
        var document = await DocumentAsync();
        using var put = new HttpRequestMessage(HttpMethod.Put, $"/v1/uploads/{Guid.NewGuid()}/content") { Content = new ByteArrayContent([1, 2, 3]) };
        put.Headers.Add("Origin", "https://elsewhere.example");
        var answer = await AssertDeclaredAsync(document, "/v1/uploads/{id}/content", "put", await Http.SendAsync(put), HttpStatusCode.Forbidden);
        Assert.Equal("cross_site_request", answer["error"]!.GetValue<string>());
    }

    /// <summary>
    /// Each route that reads a body documents it, so a generated client can send an image: multipart fields as the
    /// handlers read them, and the JSON requests of direct uploads.
    /// </summary>
    [Fact]
    public async Task OpenApi_WritesThatTakeABody_DocumentIt()
    {
        var document = await DocumentAsync();
        foreach (var (path, file, many, fields) in new (string, string, bool, string[])[]
        {
            ("/predict", "image", false, ["source"]),
            ("/v1/classifications", "image", true, ["source"]),
            ("/v1/training-jobs", "images", true, ["label", "labels", "epochs"]),
            ("/v1/samples", "images", true, ["label", "labels"]),
        })
        {
            var form = document["paths"]?[path]?["post"]?["requestBody"]?["content"]?["multipart/form-data"]?["schema"]?["properties"];
            Assert.True(form is JsonObject, $"POST {path}: no multipart/form-data body: {document["paths"]?[path]?["post"]?["requestBody"]?.ToJsonString()}");
            var files = many ? form[file]?["items"] : form[file];
            Assert.True(files?["format"]?.GetValue<string>() == "binary", $"POST {path}: '{file}' is not binary: {form.ToJsonString()}");
            foreach (var field in fields) Assert.True(form[field] is not null, $"POST {path}: no '{field}' field: {form.ToJsonString()}");
        }
        foreach (var (path, properties) in new[] { ("/v1/uploads", new[] { "count", "files", "source" }), ("/v1/uploads/commit", ["ids", "source", "duplicate_window_seconds"]) })
        {
            var schema = document["paths"]?[path]?["post"]?["requestBody"]?["content"]?["application/json"]?["schema"];
            Assert.True(schema is not null, $"POST {path}: no application/json body");
            var declared = Resolve(document, schema)["properties"]?.AsObject().Select(p => p.Key).ToList() ?? [];
            Assert.Equal(properties.Order(), declared.Order());
        }
    }

    /// <summary>
    /// The document as a client generator reads it: Microsoft.OpenApi's reader (with its default validation rules) reports
    /// no error or warning, and every "$ref" names something in the document.
    /// </summary>
    [Fact]
    public async Task OpenApi_Document_ReadsWithoutErrorsAndEveryReferenceResolves()
    {
        var bytes = await Http.GetByteArrayAsync("/openapi/v1.json");
        using var stream = new MemoryStream(bytes);
        var read = await Microsoft.OpenApi.OpenApiDocument.LoadAsync(stream, "json");
        Assert.NotNull(read.Document);
        var diagnostic = read.Diagnostic!;
        Assert.True(diagnostic.Errors.Count == 0, string.Join("\n", diagnostic.Errors.Select(e => $"{e.Pointer}: {e.Message}")));
        Assert.True(diagnostic.Warnings.Count == 0, string.Join("\n", diagnostic.Warnings.Select(e => $"{e.Pointer}: {e.Message}")));

        var document = JsonNode.Parse(bytes)!.AsObject();
        var references = References(document).ToList();
        Assert.NotEmpty(references);
        foreach (var reference in references) Resolve(document, new JsonObject { ["$ref"] = reference });
    }

    /// <summary>The API writes numbers as JSON numbers: no schema of the document lets one be a string.</summary>
    [Fact]
    public async Task OpenApi_Numbers_AreDocumentedAsWritten()
    {
        var document = await DocumentAsync();
        var numbers = Nodes(document).Where(n => Types(n).Any(t => t is "integer" or "number")).ToList();
        Assert.NotEmpty(numbers);
        var both = numbers.Where(n => Types(n).Contains("string")).Select(n => n.ToJsonString()).ToList();
        Assert.True(both.Count == 0, $"{both.Count} numbers documented as number or string, e.g. {both.FirstOrDefault()}");
    }

    /// <summary>A schema's "type", one name or a list of them (3.1 writes a nullable one as ["null", "integer"]).</summary>
    private static List<string> Types(JsonObject schema) => schema["type"] switch
    {
        JsonArray list => list.Select(t => t!.GetValue<string>()).ToList(),
        JsonValue one when one.GetValueKind() == System.Text.Json.JsonValueKind.String => [one.GetValue<string>()],
        _ => [],
    };

    private static IEnumerable<JsonObject> Nodes(JsonNode? node) => node switch
    {
        JsonObject obj => obj.Select(p => p.Value).SelectMany(Nodes).Prepend(obj),
        JsonArray array => array.SelectMany(Nodes),
        _ => [],
    };

    private static IEnumerable<string> References(JsonNode? node) => node switch
    {
        JsonObject obj => obj.SelectMany(p => p.Key == "$ref" && p.Value is JsonValue value ? [value.GetValue<string>()] : References(p.Value)),
        JsonArray array => array.SelectMany(References),
        _ => [],
    };

    [Fact]
    public async Task OpenApi_RealAnswers_HoldOnlyPropertiesTheDocumentDeclares()
    {
        var document = await DocumentAsync();
        var image = Dataset.Sample(perClass: 1)[0];
        var bytes = await File.ReadAllBytesAsync(image.Path);

        // Classifications: submit, long-poll to the result, list, finished, label.
        var (submitted, body) = await fixture.Client.SubmitAsync([(Path.GetFileName(image.Path), bytes)], source: "openapi-line");
        await AssertDeclaredAsync(document, "/v1/classifications", "post", submitted, HttpStatusCode.Accepted, body);
        var id = Guid.Parse(body["items"]![0]!["id"]!.GetValue<string>());
        var final = await Http.GetAsync($"/v1/classifications/{id}?wait=30");
        var result = await AssertDeclaredAsync(document, "/v1/classifications/{id}", "get", final, HttpStatusCode.OK);
        Assert.Equal("completed", result["status"]!.GetValue<string>()); // so all_predictions and timings are filled
        await AssertDeclaredAsync(document, "/v1/classifications", "get", await Http.GetAsync("/v1/classifications?limit=3"), HttpStatusCode.OK);
        await AssertDeclaredAsync(document, "/v1/classifications/finished", "get",
            await Http.GetAsync("/v1/classifications/finished?since=2000-01-01T00:00:00Z&limit=3"), HttpStatusCode.OK);
        await AssertDeclaredAsync(document, "/v1/classifications/{id}/label", "put",
            await Http.PutAsJsonAsync($"/v1/classifications/{id}/label", new { label = image.Label }), HttpStatusCode.OK);

        // Errors: a plain ApiError, and one that lists the refused files.
        await AssertDeclaredAsync(document, "/v1/classifications/{id}", "get", await Http.GetAsync($"/v1/classifications/{Guid.NewGuid()}"), HttpStatusCode.NotFound);
        var (refused, refusedBody) = await fixture.Client.SubmitAsync([("notes.txt", "not an image"u8.ToArray())]);
        Assert.NotNull(refusedBody["rejected"]);
        await AssertDeclaredAsync(document, "/v1/classifications", "post", refused, HttpStatusCode.BadRequest, refusedBody);
        using var noFile = new MultipartFormDataContent { { new StringContent("openapi-line"), "source" } };
        await AssertDeclaredAsync(document, "/v1/classifications", "post", await Http.PostAsync("/v1/classifications", noFile), HttpStatusCode.BadRequest);

        // Direct uploads: create, PUT the bytes to the API's URL, commit.
        var created = await AssertDeclaredAsync(document, "/v1/uploads", "post", await Http.PostAsJsonAsync("/v1/uploads", new { count = 1 }), HttpStatusCode.Created);
        var upload = created["uploads"]![0]!;
        await AssertDeclaredAsync(document, "/v1/uploads/{id}/content", "put",
            await Http.PutAsync(upload["url"]!.GetValue<string>(), new ByteArrayContent(bytes)), HttpStatusCode.OK);
        await AssertDeclaredAsync(document, "/v1/uploads/commit", "post",
            await Http.PostAsJsonAsync("/v1/uploads/commit", new { ids = new[] { upload["id"]!.GetValue<string>() } }), HttpStatusCode.Accepted);

        // Samples: upload one (no job is queued), list, delete.
        using var form = ClassifierClient.Form([(Path.GetFileName(image.Path), bytes)], field: "images");
        form.Add(new StringContent(image.Label), "label");
        var samples = await AssertDeclaredAsync(document, "/v1/samples", "post", await Http.PostAsync("/v1/samples", form), HttpStatusCode.Created);
        await AssertDeclaredAsync(document, "/v1/samples", "get", await Http.GetAsync("/v1/samples?limit=3"), HttpStatusCode.OK);
        Assert.Equal(HttpStatusCode.NoContent, (await Http.DeleteAsync($"/v1/samples/{samples["items"]![0]!["id"]!.GetValue<string>()}")).StatusCode);

        // Models, training jobs, sources, and the original API's routes.
        var models = await AssertDeclaredAsync(document, "/v1/models", "get", await Http.GetAsync("/v1/models"), HttpStatusCode.OK);
        var version = models["items"]![0]!["version"]!.GetValue<string>();
        await AssertDeclaredAsync(document, "/v1/models/{version}", "get", await Http.GetAsync($"/v1/models/{version}"), HttpStatusCode.OK);
        await AssertDeclaredAsync(document, "/v1/training-jobs", "get", await Http.GetAsync("/v1/training-jobs"), HttpStatusCode.OK);
        await AssertDeclaredAsync(document, "/v1/sources", "get", await Http.GetAsync("/v1/sources"), HttpStatusCode.OK);
        await AssertDeclaredAsync(document, "/v1/sources/{name}/composition", "get", await Http.GetAsync("/v1/sources/openapi-line/composition"), HttpStatusCode.OK);
        await AssertDeclaredAsync(document, "/v1/workers", "get", await Http.GetAsync("/v1/workers"), HttpStatusCode.OK);
        await AssertDeclaredAsync(document, "/v1/workers", "get", await Http.GetAsync("/v1/workers?minutes=0"), HttpStatusCode.BadRequest);
        await AssertDeclaredAsync(document, "/health", "get", await Http.GetAsync("/health"), HttpStatusCode.OK);
        await AssertDeclaredAsync(document, "/classes", "get", await Http.GetAsync("/classes"), HttpStatusCode.OK);
        await AssertDeclaredAsync(document, "/stats/timeseries", "get", await Http.GetAsync("/stats/timeseries?minutes=5&step_seconds=60"), HttpStatusCode.OK);
        await AssertDeclaredAsync(document, "/health/live", "get", await Http.GetAsync("/health/live"), HttpStatusCode.OK);
        await AssertDeclaredAsync(document, "/health/ready", "get", await Http.GetAsync("/health/ready"), HttpStatusCode.OK);
        // The middleware's errors on a route that declares none of its own: a repeated parameter, an unexpected Host.
        await AssertDeclaredAsync(document, "/v1/models", "get", await Http.GetAsync("/v1/models?x=1&x=2"), HttpStatusCode.BadRequest);
        using var rebound = new HttpRequestMessage(HttpMethod.Get, "/v1/training-jobs") { Headers = { Host = "rebound.example" } };
        await AssertDeclaredAsync(document, "/v1/training-jobs", "get", await Http.SendAsync(rebound), HttpStatusCode.MisdirectedRequest);
        using var predict = ClassifierClient.Form([(Path.GetFileName(image.Path), bytes)]);
        await AssertDeclaredAsync(document, "/predict", "post", await Http.PostAsync("/predict", predict), HttpStatusCode.OK);
        using var predictNoFile = new MultipartFormDataContent { { new StringContent("x"), "source" } };
        await AssertDeclaredAsync(document, "/predict", "post", await Http.PostAsync("/predict", predictNoFile), HttpStatusCode.BadRequest);
    }

    private async Task<JsonObject> DocumentAsync() => (await Http.GetFromJsonAsync<JsonObject>("/openapi/v1.json"))!;

    private static IEnumerable<(string Path, string Method, JsonObject Operation)> Operations(JsonObject document) =>
        document["paths"]!.AsObject().SelectMany(path => path.Value!.AsObject()
            .Where(o => o.Key is "get" or "post" or "put" or "delete" or "patch")
            .Select(o => (path.Key, o.Key, o.Value!.AsObject())));

    private static JsonNode JsonSchema(JsonNode response, string name)
    {
        var schema = response["content"]?["application/json"]?["schema"];
        Assert.True(schema is not null, $"{name}: no application/json schema in {response.ToJsonString()}");
        return schema;
    }

    /// <summary>Checks the answer's status, then that every property of its JSON is in the operation's schema for that status.</summary>
    private static async Task<JsonNode> AssertDeclaredAsync(JsonObject document, string path, string method, HttpResponseMessage response, HttpStatusCode status,
        JsonNode? body = null)
    {
        body ??= await ClassifierClient.ReadJsonAsync(response);
        var name = $"{method.ToUpperInvariant()} {path} {(int)status}";
        Assert.True(response.StatusCode == status, $"{name}: got {(int)response.StatusCode}: {body.ToJsonString()}");
        var operation = document["paths"]?[path]?[method];
        Assert.True(operation is not null, $"{name}: not in the document");
        var schema = JsonSchema(operation["responses"]?[((int)status).ToString()] ?? throw new Xunit.Sdk.XunitException($"{name}: status not documented"), name);
        var checkedProperties = Declared(document, body, schema, "$");
        Assert.True(checkedProperties > 0, $"{name}: no property was checked in {body.ToJsonString()}");
        AssertValid(document, schema, body, name);
        return body;
    }

    /// <summary>
    /// Validates <paramref name="value"/> against <paramref name="schema"/> as a JSON Schema 2020-12 validator does (what
    /// OpenAPI 3.1 schemas are), so oneOf's "exactly one branch", types and nulls count, not only property names. The
    /// document's components become the schema's $defs, so its "#/components/schemas/X" references resolve.
    /// </summary>
    private static void AssertValid(JsonObject document, JsonNode schema, JsonNode? value, string name)
    {
        var root = new JsonObject
        {
            ["$schema"] = "https://json-schema.org/draft/2020-12/schema",
            ["$defs"] = WithDefs(document["components"]?["schemas"]?.DeepClone() ?? new JsonObject()),
            ["allOf"] = new JsonArray(WithDefs(schema.DeepClone())),
        };
        // Each build registers its schema under its base URI: one of its own for every answer.
        var built = Json.Schema.JsonSchema.Build(JsonSerializer.SerializeToElement(root), baseUri: new Uri($"https://openapi.test/{Guid.NewGuid()}"));
        var results = built.Evaluate(JsonSerializer.SerializeToElement(value), new Json.Schema.EvaluationOptions { OutputFormat = Json.Schema.OutputFormat.List });
        var errors = (results.Details ?? []).Where(d => d.Errors is { Count: > 0 })
            .Select(d => $"{d.InstanceLocation} at {d.EvaluationPath}: {string.Join("; ", d.Errors!.Values)}");
        Assert.True(results.IsValid, $"{name}: the answer does not validate against its schema:\n{string.Join("\n", errors)}\n{value?.ToJsonString()}");
    }

    /// <summary>Points each "#/components/schemas/" reference in <paramref name="node"/> at "#/$defs/".</summary>
    private static JsonNode WithDefs(JsonNode node)
    {
        foreach (var obj in Nodes(node).ToList())
            if (obj["$ref"] is JsonValue reference && reference.GetValue<string>() is var target && target.StartsWith("#/components/schemas/", StringComparison.Ordinal))
                obj["$ref"] = "#/$defs/" + target["#/components/schemas/".Length..];
        return node;
    }

    /// <summary>
    /// Walks <paramref name="value"/> against <paramref name="schema"/> ($ref, oneOf/anyOf/allOf, properties,
    /// additionalProperties, items), failing on a property no schema declares or a required one the answer lacks (a client
    /// that validates would refuse it); returns how many properties it checked.
    /// A schema that says nothing of an object's shape (recorded JSON such as a model card) accepts any.
    /// </summary>
    private static int Declared(JsonObject document, JsonNode? value, JsonNode schema, string at)
    {
        var branches = Branches(document, schema).ToList();
        var count = 0;
        switch (value)
        {
            case JsonObject obj:
                var declared = branches.Where(b => b["properties"] is JsonObject).ToList();
                var additional = branches.Select(b => b["additionalProperties"]).OfType<JsonObject>().ToList();
                if (declared.Count == 0 && additional.Count == 0) return 0;
                foreach (var required in declared.SelectMany(b => b["required"]?.AsArray().Select(r => r!.GetValue<string>()) ?? []))
                    Assert.True(obj.ContainsKey(required), $"{at}.{required} is required by the schema but not in the answer {obj.ToJsonString()}");
                foreach (var (key, child) in obj)
                {
                    var property = declared.Select(b => b["properties"]![key]).FirstOrDefault(p => p is not null) ?? additional.FirstOrDefault();
                    Assert.True(property is not null, $"{at}.{key} is in the answer but not in the schema ({string.Join(", ", declared.SelectMany(b => b["properties"]!.AsObject().Select(p => p.Key)))})");
                    count += 1 + Declared(document, child, property, $"{at}.{key}");
                }
                return count;
            case JsonArray array:
                var items = branches.Select(b => b["items"]).FirstOrDefault(i => i is not null);
                if (items is null) return 0;
                for (var i = 0; i < array.Count; i++) count += Declared(document, array[i], items, $"{at}[{i}]");
                return count;
            default:
                return 0;
        }
    }

    /// <summary>The schema with its $ref followed, and each branch of its oneOf/anyOf/allOf, recursively.</summary>
    private static IEnumerable<JsonNode> Branches(JsonObject document, JsonNode schema)
    {
        var resolved = Resolve(document, schema);
        yield return resolved;
        foreach (var keyword in new[] { "oneOf", "anyOf", "allOf" })
            if (resolved[keyword] is JsonArray list)
                foreach (var branch in list)
                    foreach (var inner in Branches(document, branch!))
                        yield return inner;
    }

    /// <summary>Follows "$ref": "#/a/b" pointers within the document.</summary>
    private static JsonNode Resolve(JsonObject document, JsonNode schema)
    {
        for (var hops = 0; schema["$ref"] is JsonValue reference; hops++)
        {
            Assert.True(hops < 20, $"a $ref cycle at {reference}");
            var pointer = reference.GetValue<string>();
            Assert.StartsWith("#/", pointer);
            JsonNode? node = document;
            foreach (var segment in pointer[2..].Split('/'))
                node = node?[segment.Replace("~1", "/").Replace("~0", "~")];
            schema = node ?? throw new Xunit.Sdk.XunitException($"{pointer} does not resolve");
        }
        return schema;
    }
}
