using System.Security.Cryptography;

namespace ReaperProxy.Configuration;

/// <summary>Loads, validates and watches the <c>--config</c> file. See <see cref="ConfigFileSource"/>.</summary>
public sealed class ConfigFileProvider : ConfigurationProvider, IDisposable
{
    // What a ReaperProxy config file may hold: the reaper's and YARP's sections and the host's own.
    private static readonly string[] s_knownSections = ["Reaper", "ReverseProxy", "Kestrel", "Logging", "AllowedHosts", "Urls"];

    private readonly ConfigFileSource _source;
    private readonly Lock _gate = new();
    private Timer? _poll;
    private byte[]? _lastHash;

    /// <summary>Creates the provider; <see cref="Load"/> reads the file.</summary>
    public ConfigFileProvider(ConfigFileSource source) => _source = source;

    /// <summary>
    /// Problems found by the first load; the host reports them and exits. The file's own problems (unreadable,
    /// not JSON, unknown top-level sections) always; its settings' too unless
    /// <see cref="ConfigFileSource.JudgeSettingsOnFirstLoad"/> is false.
    /// </summary>
    public IReadOnlyList<ConfigError> LoadErrors { get; private set; } = [];

    /// <summary>Reads the file for the first time and starts watching it.</summary>
    public override void Load()
    {
        lock (_gate)
        {
            var (data, hash, errors) = ReadAndParse(_source.Path);
            LoadErrors = data is not null && _source.JudgeSettingsOnFirstLoad ? [.. JudgeAlone(data), .. errors] : errors;
            _lastHash = hash;
            Data = data ?? new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
            _source.Reporter.Register(this);
            _poll ??= new Timer(_ => Poll(), null, _source.PollInterval, _source.PollInterval);
        }
    }

    /// <summary>Checks the file now (the timer calls this; tests may too).</summary>
    public void Poll()
    {
        lock (_gate)
        {
            byte[] bytes;
            try
            {
                bytes = File.ReadAllBytes(_source.Path);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Mid-replace or briefly missing: try again at the next poll; the old data keeps serving.
                return;
            }

            var hash = SHA256.HashData(bytes);
            if (_lastHash is not null && hash.AsSpan().SequenceEqual(_lastHash))
            {
                return;
            }

            _lastHash = hash;
            var (data, errors) = Parse(bytes);
            if (data is not null)
            {
                errors = [.. _source.Reporter.Judge(this, data), .. errors];
            }

            if (data is null || errors.Count > 0)
            {
                _source.Reporter.Rejected(_source.Path, errors);
                return;
            }

            Data = data;
            _source.Reporter.Applied(_source.Path);
        }

        OnReload();
    }

    /// <summary>Stops watching.</summary>
    public void Dispose() => _poll?.Dispose();

    /// <summary>Parses and judges a file on its own, over the built-in defaults.</summary>
    internal static (Dictionary<string, string?>? Data, byte[]? Hash, IReadOnlyList<ConfigError> Errors) ReadAndValidate(string path)
    {
        var (data, hash, errors) = ReadAndParse(path);
        return (data, hash, data is null ? errors : [.. JudgeAlone(data), .. errors]);
    }

    /// <summary>The problems of <paramref name="data"/>'s <c>Reaper</c> and <c>ReverseProxy</c> sections as the only configuration over the built-in defaults.</summary>
    internal static IReadOnlyList<ConfigError> JudgeAlone(IDictionary<string, string?> data)
    {
        ReaperSettingsReader.Read(new ConfigurationBuilder().AddInMemoryCollection(data).Build(), out var errors);
        return errors;
    }

    // The file's own problems: unreadable, not JSON, an unknown top-level section. Its settings are judged apart.
    private static (Dictionary<string, string?>? Data, byte[]? Hash, IReadOnlyList<ConfigError> Errors) ReadAndParse(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (FileNotFoundException)
        {
            return (null, null, [new(string.Empty, "file not found")]);
        }
        catch (DirectoryNotFoundException)
        {
            return (null, null, [new(string.Empty, "file not found (the directory does not exist)")]);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return (null, null, [new(string.Empty, $"cannot read the file: {ex.Message}")]);
        }

        var (data, errors) = Parse(bytes);
        return (data, SHA256.HashData(bytes), errors);
    }

    private static (Dictionary<string, string?>? Data, IReadOnlyList<ConfigError> Errors) Parse(byte[] bytes)
    {
        Dictionary<string, string?> data;
        try
        {
            var root = new ConfigurationBuilder().AddJsonStream(new MemoryStream(bytes)).Build();
            data = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
            foreach (var pair in root.AsEnumerable())
            {
                data[pair.Key] = pair.Value;
            }
        }
        catch (Exception ex) when (ex is FormatException or System.Text.Json.JsonException or InvalidOperationException)
        {
            var detail = ex.InnerException?.Message ?? ex.Message;
            return (null, [new(string.Empty, $"invalid JSON: {detail}")]);
        }

        // A misspelled section would be ignored silently: "ReversProxy" would drop every route.
        var errors = new List<ConfigError>();
        foreach (var section in new ConfigurationBuilder().AddInMemoryCollection(data).Build().GetChildren())
        {
            if (!s_knownSections.Contains(section.Key, StringComparer.OrdinalIgnoreCase))
            {
                errors.Add(new(section.Key, $"unknown top-level section '{section.Key}' (known: {string.Join(", ", s_knownSections)})"));
            }
        }

        return (data, errors);
    }
}
