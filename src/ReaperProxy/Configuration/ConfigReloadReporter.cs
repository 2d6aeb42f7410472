using Microsoft.Extensions.Logging.Abstractions;

namespace ReaperProxy.Configuration;

/// <summary>
/// Bridges the configuration provider, which exists before dependency injection, and the logger and
/// metrics that exist after it. Reload outcomes before <see cref="Attach"/> are only counted. It is the
/// one rejection path (event 1001 and <c>reaper.config.reloads{result="rejected"}</c>), and it carries
/// the provider's question "may this data be applied?" to <see cref="ReaperSettingsMonitor"/>.
/// </summary>
public sealed partial class ConfigReloadReporter
{
    private ILogger _logger = NullLogger.Instance;
    private readonly List<ConfigFileProvider> _providers = [];
    private Func<IConfigurationProvider, IDictionary<string, string?>, IReadOnlyList<ConfigError>>? _judge;

    /// <summary>Raised after a reload was rejected (for metrics).</summary>
    public event Action? ReloadRejected;

    /// <summary>Raised after a reload was applied (for metrics).</summary>
    public event Action? ReloadApplied;

    /// <summary>The providers this reporter serves (normally the one <c>--config</c> file).</summary>
    public IReadOnlyList<ConfigFileProvider> Providers => _providers;

    /// <summary>Starts logging reload outcomes.</summary>
    public void Attach(ILogger logger) => _logger = logger;

    /// <summary>From now on, <paramref name="judge"/> decides the problems of a changed file's data.</summary>
    internal void JudgeWith(Func<IConfigurationProvider, IDictionary<string, string?>, IReadOnlyList<ConfigError>> judge) => _judge = judge;

    /// <summary>
    /// The problems of the <c>Reaper</c> and <c>ReverseProxy</c> sections were <paramref name="data"/> the data
    /// of <paramref name="provider"/>: judged by the monitor in the whole configuration when there is one,
    /// else the file alone over the built-in defaults.
    /// </summary>
    internal IReadOnlyList<ConfigError> Judge(ConfigFileProvider provider, IDictionary<string, string?> data) =>
        _judge is { } judge ? judge(provider, data) : ConfigFileProvider.JudgeAlone(data);

    internal void Register(ConfigFileProvider provider)
    {
        if (!_providers.Contains(provider))
        {
            _providers.Add(provider);
        }
    }

    internal void Rejected(string path, IReadOnlyList<ConfigError> errors)
    {
        LogRejected(_logger, path, errors.Count, string.Join("; ", errors));
        ReloadRejected?.Invoke();
    }

    internal void Applied(string path)
    {
        LogApplied(_logger, path);
        ReloadApplied?.Invoke();
    }

    [LoggerMessage(EventId = 1001, EventName = "ConfigReloadRejected", Level = LogLevel.Error,
        Message = "Configuration reload of {Path} rejected ({Count} problem(s)); the last good configuration keeps serving: {Problems}")]
    private static partial void LogRejected(ILogger logger, string path, int count, string problems);

    [LoggerMessage(EventId = 1000, EventName = "ConfigReloadApplied", Level = LogLevel.Information,
        Message = "Configuration reloaded from {Path}")]
    private static partial void LogApplied(ILogger logger, string path);
}
