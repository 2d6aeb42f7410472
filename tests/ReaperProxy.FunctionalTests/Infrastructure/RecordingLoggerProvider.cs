using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace ReaperProxy.FunctionalTests.Infrastructure;

/// <summary>One log event as the proxy wrote it.</summary>
public sealed record LoggedEvent(string Category, LogLevel Level, EventId EventId, string Message);

/// <summary>Keeps the proxy's log events so a test can assert on the lines operators rely on.</summary>
public sealed class RecordingLoggerProvider : ILoggerProvider
{
    private readonly ConcurrentQueue<LoggedEvent> _events = new();

    public IReadOnlyList<LoggedEvent> Events => [.. _events];

    public IEnumerable<LoggedEvent> WithEventId(int id) => _events.Where(e => e.EventId.Id == id);

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _events);

    public void Dispose()
    {
    }

    private sealed class Logger(string category, ConcurrentQueue<LoggedEvent> events) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Debug;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                events.Enqueue(new LoggedEvent(category, logLevel, eventId, formatter(state, exception)));
            }
        }
    }
}
