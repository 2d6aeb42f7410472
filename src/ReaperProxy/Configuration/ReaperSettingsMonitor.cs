using Microsoft.Extensions.Configuration.Memory;
using Microsoft.Extensions.Primitives;

namespace ReaperProxy.Configuration;

/// <summary>
/// Holds the current <see cref="ReaperSettings"/> and replaces it when the configuration reloads. It is
/// the one place the <c>Reaper</c> section is judged, once per load: at start-up (<see cref="LoadErrors"/>),
/// for a changed <c>--config</c> file before the file's data reaches anyone (the provider asks through
/// <see cref="ConfigReloadReporter"/>, and the snapshot judged then is the one published), and for a
/// reload from any other source. A snapshot that fails is rejected through the reporter (event 1001,
/// <c>reaper.config.reloads{result="rejected"}</c>): the previous one keeps serving.
/// </summary>
public sealed class ReaperSettingsMonitor : IDisposable
{
    private readonly IConfiguration _configuration;
    private readonly ConfigReloadReporter? _reporter;
    private readonly IDisposable _subscription;
    private volatile ReaperSettings _current;

    // Judged while the --config file's new data was a candidate; published by the reload that follows.
    private ReaperSettings? _staged;

    /// <summary>Reads and judges the initial snapshot and subscribes to reloads.</summary>
    public ReaperSettingsMonitor(IConfiguration configuration, ConfigReloadReporter? reporter = null)
    {
        _configuration = configuration;
        _reporter = reporter;
        var settings = ReaperSettingsReader.Read(configuration, out var errors);
        LoadErrors = errors;
        _current = errors.Count == 0 ? settings : ReaperSettings.Empty;
        if (reporter is not null)
        {
            reporter.JudgeWith(JudgeCandidate);
            reporter.ReloadRejected += () => Interlocked.Exchange(ref _staged, null);
        }

        _subscription = ChangeToken.OnChange(configuration.GetReloadToken, Reload);
    }

    /// <summary>The problems of the initial snapshot (then <see cref="Current"/> is <see cref="ReaperSettings.Empty"/>).</summary>
    public IReadOnlyList<ConfigError> LoadErrors { get; }

    /// <summary>The current snapshot. Never null.</summary>
    public ReaperSettings Current => _current;

    /// <summary>Raised after a new snapshot is published.</summary>
    public event Action<ReaperSettings>? Changed;

    /// <inheritdoc />
    public void Dispose() => _subscription.Dispose();

    private void Reload()
    {
        if (Interlocked.Exchange(ref _staged, null) is not { } settings)
        {
            // Not the --config file (whose data was judged before it was applied): judge what changed now.
            settings = ReaperSettingsReader.Read(_configuration, out var errors);
            if (errors.Count > 0)
            {
                _reporter?.Rejected("the configuration", errors);
                return;
            }
        }

        _current = settings;
        Changed?.Invoke(settings);
    }

    // The whole configuration as it would read with the file's candidate data in place of its current data,
    // so values from the environment or the command line count exactly as they will once it is applied.
    private IReadOnlyList<ConfigError> JudgeCandidate(IConfigurationProvider file, IDictionary<string, string?> data)
    {
        if (_configuration is not IConfigurationRoot root || !root.Providers.Contains(file))
        {
            return ConfigFileProvider.JudgeAlone(data);
        }

        var candidateProviders = root.Providers
            .Select(p => ReferenceEquals(p, file) ? new MemoryConfigurationProvider(new MemoryConfigurationSource { InitialData = data }) : (IConfigurationProvider)new Loaded(p))
            .ToList();
        using var candidate = new ConfigurationRoot(candidateProviders);
        var settings = ReaperSettingsReader.Read(candidate, out var errors);
        Interlocked.Exchange(ref _staged, errors.Count == 0 ? settings : null);
        return errors;
    }

    // A provider as it stands: the candidate view reads it and must not make it load its source again.
    private sealed class Loaded(IConfigurationProvider inner) : IConfigurationProvider
    {
        public void Load()
        {
        }

        public bool TryGet(string key, out string? value) => inner.TryGet(key, out value);

        public void Set(string key, string? value) => throw new NotSupportedException();

        public IChangeToken GetReloadToken() => new CancellationChangeToken(CancellationToken.None);

        public IEnumerable<string> GetChildKeys(IEnumerable<string> earlierKeys, string? parentPath) => inner.GetChildKeys(earlierKeys, parentPath);
    }
}
