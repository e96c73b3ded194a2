using System.Data.Common;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using WasteClassifier.Api.Apis;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Persistence;

/// <summary>
/// GET /v1/classifications on PostgreSQL: the index walk its query gets, which decides whether a page reads about its
/// size or the whole table.
/// </summary>
public sealed class ClassificationListTests
{
    [IntegrationFact]
    public Task List_OnPostgres_ByPredictedClass_WalksItsIndex() =>
        WithListScanAsync(source: null, predictedClass: "glass", cursor: null, scan =>
        {
            // Without an index of its own, a rare or absent class read the whole table (or the newest-first index) per page.
            Assert.True(scan.Line.Contains("ix_classifications_predicted_class_created_at_id") && scan.Condition.Contains("predicted_class"), scan.Plan);
        });

    /// <summary>Lists on an empty PostgreSQL database with the filters given, and hands the plan's scan of classifications to <paramref name="check"/>.</summary>
    private static Task WithListScanAsync(string? source, string? predictedClass, string? cursor, Action<Scan> check)
    {
        var commands = new LastCommand();
        return ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Postgres, "wc-list-plan", async newContext =>
        {
            await using (var db = newContext())
            {
                var result = await ClassificationsApi.ListAsync(db, source, status: null, limit: 50, cursor, predictedClass, CancellationToken.None);
                Assert.IsType<Ok<ClassificationPage>>(result);
            }
            check(await IndexScanAsync(newContext, commands));
        }, commands);
    }

    /// <summary>
    /// The list query's scan of classifications in PostgreSQL's plan: the scan line and its Index Cond. Sequential, bitmap
    /// scans and sorts are turned off for the plan, so an empty table's costs cannot choose for the index: only whether the
    /// query lets the index bound the walk shows.
    /// </summary>
    private static async Task<Scan> IndexScanAsync(Func<ClassifierDbContext> newContext, LastCommand commands)
    {
        await using var db = newContext();
        var connection = db.Database.GetDbConnection();
        await connection.OpenAsync();
        await using (var settings = connection.CreateCommand())
        {
            settings.CommandText = "SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_sort = off";
            await settings.ExecuteNonQueryAsync();
        }
        await using var explain = connection.CreateCommand();
        explain.CommandText = "EXPLAIN " + commands.Text;
        foreach (var (name, value) in commands.Parameters)
        {
            var parameter = explain.CreateParameter();
            parameter.ParameterName = name;
            parameter.Value = value;
            explain.Parameters.Add(parameter);
        }
        var plan = new List<string>();
        await using (var reader = await explain.ExecuteReaderAsync())
            while (await reader.ReadAsync()) plan.Add(reader.GetString(0));

        var at = plan.FindIndex(l => l.Contains("Index Scan") && l.Contains(" on classifications"));
        Assert.True(at >= 0, "no index scan of classifications:\n" + string.Join('\n', plan));
        var condition = plan.Skip(at + 1).TakeWhile(l => !l.Contains("->")).FirstOrDefault(l => l.Contains("Index Cond:")) ?? "";
        return new Scan(plan[at], condition, string.Join('\n', plan));
    }

    /// <summary>The scan line, its Index Cond line (empty when none) and the whole plan (for a failure's message).</summary>
    private sealed record Scan(string Line, string Condition, string Plan);

    /// <summary>The text and parameters of the last query a context ran.</summary>
    private sealed class LastCommand : DbCommandInterceptor
    {
        public string Text { get; private set; } = "";
        public List<(string Name, object? Value)> Parameters { get; } = [];

        public override ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(DbCommand command, CommandEventData eventData,
            InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default)
        {
            Text = command.CommandText;
            Parameters.Clear();
            Parameters.AddRange(command.Parameters.Cast<DbParameter>().Select(p => (p.ParameterName, (object?)p.Value)));
            return base.ReaderExecutingAsync(command, eventData, result, cancellationToken);
        }
    }
}
