using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace WasteClassifier.Api.Extensions;

/// <summary>
/// Every time the API writes is RFC 3339 in UTC with <c>Z</c> and the fraction's trailing zeros dropped
/// (<c>2026-12-02T00:16:16.4812Z</c>), as its CSV writes them: JSON gave <c>+00:00</c> with seven digits. Reading is unchanged.
/// </summary>
public sealed class UtcDateTimeOffsetJsonConverter : JsonConverter<DateTimeOffset>
{
    public override DateTimeOffset Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.GetDateTimeOffset();

    // A UTC DateTime: System.Text.Json writes it with Z and a trimmed fraction.
    public override void Write(Utf8JsonWriter writer, DateTimeOffset value, JsonSerializerOptions options) => writer.WriteStringValue(value.UtcDateTime);
}

/// <summary>As <see cref="UtcDateTimeOffsetJsonConverter"/>; a time without a kind (SQLite gives those) is UTC, as every stored time is.</summary>
public sealed class UtcDateTimeJsonConverter : JsonConverter<DateTime>
{
    public override DateTime Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.GetDateTime();

    public override void Write(Utf8JsonWriter writer, DateTime value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.Kind == DateTimeKind.Unspecified ? DateTime.SpecifyKind(value, DateTimeKind.Utc) : value.ToUniversalTime());
}

public static class UtcTimeSchemas
{
    /// <summary>
    /// A type with a converter of its own is described without a type; a time stays a string (date-time) in the OpenAPI
    /// document, as it was before these converters.
    /// </summary>
    public static Task TransformAsync(OpenApiSchema schema, OpenApiSchemaTransformerContext context, CancellationToken cancellationToken)
    {
        var type = context.JsonTypeInfo.Type;
        var underlying = Nullable.GetUnderlyingType(type);
        if ((underlying ?? type) == typeof(DateTime) || (underlying ?? type) == typeof(DateTimeOffset))
        {
            schema.Type = underlying is null ? JsonSchemaType.String : JsonSchemaType.String | JsonSchemaType.Null;
            schema.Format = "date-time";
        }
        return Task.CompletedTask;
    }
}
