namespace ReaperProxy.Configuration;

/// <summary>
/// The <c>--config</c> file as a configuration source. Unlike the stock JSON provider, a reload that
/// fails to parse or validate never reaches the application: the last good data keeps serving
/// (the stock provider empties itself on a bad reload, which would drop every YARP route).
/// </summary>
public sealed class ConfigFileSource : IConfigurationSource
{
    /// <summary>Creates a source for <paramref name="path"/>.</summary>
    public ConfigFileSource(string path, ConfigReloadReporter reporter)
    {
        Path = System.IO.Path.GetFullPath(path);
        Reporter = reporter;
    }

    /// <summary>The absolute path of the file.</summary>
    public string Path { get; }

    /// <summary>Where reload outcomes are reported once logging exists.</summary>
    public ConfigReloadReporter Reporter { get; }

    /// <summary>How often the file is checked for changes (polling also sees ConfigMap symlink swaps).</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Whether the first load judges the file's <c>Reaper</c> and <c>ReverseProxy</c> sections itself (the
    /// file alone over the built-in defaults; default true). The host sets false: it judges the whole
    /// configuration once it is assembled (<see cref="ReaperSettingsMonitor.LoadErrors"/>), so a start-up
    /// judges each problem once. Reloads are always judged, through <see cref="ConfigReloadReporter"/>.
    /// </summary>
    public bool JudgeSettingsOnFirstLoad { get; init; } = true;

    /// <inheritdoc />
    public IConfigurationProvider Build(IConfigurationBuilder builder) => new ConfigFileProvider(this);
}
