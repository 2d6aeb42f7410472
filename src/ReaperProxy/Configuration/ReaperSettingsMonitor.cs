using Microsoft.Extensions.Primitives;

namespace ReaperProxy.Configuration;

/// <summary>
/// Holds the current <see cref="ReaperSettings"/> and replaces it when the configuration reloads.
/// A snapshot that fails validation is logged and ignored: the previous one keeps serving.
/// </summary>
public sealed partial class ReaperSettingsMonitor : IDisposable
{
    private readonly IConfiguration _configuration;
    private readonly ILogger<ReaperSettingsMonitor> _logger;
    private readonly IDisposable _subscription;
    private volatile ReaperSettings _current;

    /// <summary>Reads the initial snapshot and subscribes to reloads.</summary>
    public ReaperSettingsMonitor(IConfiguration configuration, ILogger<ReaperSettingsMonitor> logger)
    {
        _configuration = configuration;
        _logger = logger;
        var settings = ReaperSettingsReader.Read(configuration, out var errors);
        _current = errors.Count == 0 ? settings : ReaperSettings.Empty;
        _subscription = ChangeToken.OnChange(configuration.GetReloadToken, Reload);
    }

    /// <summary>The current snapshot. Never null.</summary>
    public ReaperSettings Current => _current;

    /// <summary>Raised after a new snapshot is published.</summary>
    public event Action<ReaperSettings>? Changed;

    /// <inheritdoc />
    public void Dispose() => _subscription.Dispose();

    private void Reload()
    {
        var settings = ReaperSettingsReader.Read(_configuration, out var errors);
        if (errors.Count > 0)
        {
            LogRejected(_logger, string.Join("; ", errors));
            return;
        }

        _current = settings;
        Changed?.Invoke(settings);
    }

    [LoggerMessage(EventId = 1002, EventName = "ReaperSettingsRejected", Level = LogLevel.Error,
        Message = "The reloaded Reaper settings are invalid and were ignored: {Problems}")]
    private static partial void LogRejected(ILogger logger, string problems);
}
