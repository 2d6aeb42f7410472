using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Infrastructure;

/// <summary>Sends in-process server logs to the test's output, so a failing test shows what the servers said.</summary>
public sealed class XunitLoggerProvider(ITestOutputHelper output, string prefix) : ILoggerProvider
{
    /// <inheritdoc />
    public ILogger CreateLogger(string categoryName) => new Logger(output, prefix, categoryName);

    /// <inheritdoc />
    public void Dispose()
    {
    }

    private sealed class Logger(ITestOutputHelper output, string prefix, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            try
            {
                output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} [{prefix}] {logLevel} {category}: {formatter(state, exception)}" + (exception is null ? string.Empty : Environment.NewLine + exception));
            }
            catch (InvalidOperationException)
            {
                // The test has finished; late log lines (e.g. during disposal) have nowhere to go.
            }
        }
    }
}
