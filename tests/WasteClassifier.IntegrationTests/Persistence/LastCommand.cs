using System.Data.Common;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace WasteClassifier.IntegrationTests.Persistence;

/// <summary>The text and parameters of the last query a context ran (for EXPLAIN of the exact SQL EF Core sent).</summary>
internal sealed class LastCommand : DbCommandInterceptor
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
