#include "PluginEditor.h"

#include <algorithm>

namespace sideman::plugin {

namespace {

constexpr const char* kDragPrefix = "sideman-take:";

juce::String shortTime(const juce::String& iso) {
    if (iso.isEmpty()) return {};
    const auto t = juce::Time::fromISO8601(iso);
    return t.toMilliseconds() == 0 ? juce::String() : t.toString(false, true, false, true);
}

}  // namespace

SidemanEditor::SidemanEditor(SidemanAudioProcessor& owner)
    : juce::AudioProcessorEditor(owner), processor_(owner) {
    auto& controller = processor_.controller();
    const auto session = controller.session();

    addAndMakeVisible(promptLabel_);
    prompt_.setTextToShowWhenEmpty("describe the part to add, e.g. \"warm electric bass\"", juce::Colours::grey);
    prompt_.setText(session.prompt, juce::dontSendNotification);
    prompt_.onTextChange = [this] { processor_.controller().setPrompt(prompt_.getText()); };
    addAndMakeVisible(prompt_);
    addButton(generate_, [this] { processor_.controller().requestAction(Action::generate); });

    addAndMakeVisible(modelLabel_);
    model_.setTextWhenNothingSelected("default");
    model_.setTextWhenNoChoicesAvailable("default (the server lists no others)");
    model_.onChange = [this] {
        if (model_.getSelectedId() > 0) processor_.controller().setModel(model_.getText());
    };
    addAndMakeVisible(model_);
    addButton(style_, [this] { chooseStyle(); });
    addButton(clearStyle_, [this] { processor_.controller().setStyleFile({}); });
    clearStyle_.setTooltip("No style reference");
    addSlider(styleMix_, param::styleMix, "Style mix");

    addAndMakeVisible(takesLabel_);
    takes_.setRowHeight(22);
    takes_.setMultipleSelectionEnabled(false);
    addAndMakeVisible(takes_);
    noTakes_.setText("No takes yet: play some bars, then press Generate.", juce::dontSendNotification);
    noTakes_.setJustificationType(juce::Justification::centred);
    noTakes_.setInterceptsMouseClicks(false, false);
    addAndMakeVisible(noTakes_);
    addButton(star_, [this] {
        if (const auto* take = selectedTake()) processor_.controller().starTake(take->id, !take->starred);
    });
    addButton(rename_, [this] { rename(); });
    addButton(delete_, [this] {
        if (const auto* take = selectedTake()) processor_.controller().deleteTake(take->id);
    });
    addButton(trash_, [this] { showTrash(); });
    renameBox_.onReturnKey = [this] { finishRename(true); };
    renameBox_.onEscapeKey = [this] { finishRename(false); };
    renameBox_.onFocusLost = [this] { finishRename(true); };
    addChildComponent(renameBox_);
    addButton(reveal_, [this] { reveal(); });

    addButton(vary_, [this] { processor_.controller().requestAction(Action::vary); });
    addSlider(strength_, param::strength, "Strength");
    addButton(inpaint_, [this] { processor_.controller().requestAction(Action::inpaint); });
    addSlider(inpaintFrom_, param::inpaintFrom, "from bar");
    addSlider(inpaintTo_, param::inpaintTo, "to bar");
    addAndMakeVisible(loop_);
    loopAttachment_ = std::make_unique<juce::AudioProcessorValueTreeState::ButtonAttachment>(processor_.parameters(),
                                                                                            param::loop, loop_);

    addSlider(steps_, param::steps, "Steps");
    addSlider(guidanceContext_, param::guidanceContext, "Context guidance");
    addSlider(guidanceClap_, param::guidanceClap, "CLAP guidance");
    addSlider(seed_, param::seed, "Seed");
    addSlider(bars_, param::bars, "Bars");

    addChildComponent(progress_);
    status_.setMultiLine(true, true);  // wraps: every message fits the window's width
    status_.setReadOnly(true);
    status_.setCaretVisible(false);
    status_.setScrollbarsShown(true);
    status_.setColour(juce::TextEditor::outlineColourId, juce::Colours::transparentBlack);
    status_.setColour(juce::TextEditor::backgroundColourId, juce::Colours::transparentBlack);
    addAndMakeVisible(status_);

    setResizable(true, true);
    setResizeLimits(600, 560, 1400, 1000);
    setSize(720, 620);
    timerCallback();
    startTimerHz(10);
}

SidemanEditor::~SidemanEditor() { stopTimer(); }

void SidemanEditor::addSlider(LabelledSlider& s, const char* parameterId, const juce::String& name) {
    s.label.setText(name, juce::dontSendNotification);
    s.slider.setTextBoxStyle(juce::Slider::TextBoxRight, false, 56, 20);
    addAndMakeVisible(s.label);
    addAndMakeVisible(s.slider);
    s.attachment = std::make_unique<juce::AudioProcessorValueTreeState::SliderAttachment>(processor_.parameters(),
                                                                                          parameterId, s.slider);
}

void SidemanEditor::addButton(juce::Button& b, std::function<void()> onClick) {
    b.onClick = std::move(onClick);
    addAndMakeVisible(b);
}

void SidemanEditor::paint(juce::Graphics& g) {
    g.fillAll(getLookAndFeel().findColour(juce::ResizableWindow::backgroundColourId));
}

void SidemanEditor::resized() {
    auto area = getLocalBounds().reduced(10);
    const auto place = [](juce::Rectangle<int>& line, LabelledSlider& s, int labelWidth, int width) {
        auto cell = width > 0 ? line.removeFromLeft(width) : line;
        s.label.setBounds(cell.removeFromLeft(labelWidth));
        s.slider.setBounds(cell);
    };

    auto row = area.removeFromTop(26);
    promptLabel_.setBounds(row.removeFromLeft(60));
    generate_.setBounds(row.removeFromRight(100));
    row.removeFromRight(8);
    prompt_.setBounds(row);
    area.removeFromTop(6);

    row = area.removeFromTop(24);
    modelLabel_.setBounds(row.removeFromLeft(60));
    model_.setBounds(row.removeFromLeft(juce::jmin(220, row.getWidth() / 3)));
    row.removeFromLeft(8);
    style_.setBounds(row.removeFromLeft(150));
    clearStyle_.setBounds(row.removeFromLeft(24));
    row.removeFromLeft(8);
    place(row, styleMix_, 70, 0);
    area.removeFromTop(6);

    // Bottom up: status, progress, settings (two columns), edits.
    status_.setBounds(area.removeFromBottom(52));
    progress_.setBounds(area.removeFromBottom(20));
    area.removeFromBottom(6);
    const int half = area.getWidth() / 2;
    for (auto pair : { std::make_pair(&seed_, &bars_), std::make_pair(&guidanceContext_, &guidanceClap_) }) {
        auto line = area.removeFromBottom(24);
        place(line, *pair.first, 120, half - 6);
        line.removeFromLeft(12);
        place(line, *pair.second, 110, 0);
    }
    {
        auto line = area.removeFromBottom(24);
        place(line, steps_, 120, half - 6);
        line.removeFromLeft(12);
        loop_.setBounds(line.removeFromLeft(80));
    }
    area.removeFromBottom(6);
    {
        auto line = area.removeFromBottom(24);
        inpaint_.setBounds(line.removeFromLeft(110));
        line.removeFromLeft(8);
        const int w = line.getWidth() / 2;
        place(line, inpaintFrom_, 70, w - 4);
        line.removeFromLeft(8);
        place(line, inpaintTo_, 56, 0);
    }
    area.removeFromBottom(4);
    {
        auto line = area.removeFromBottom(24);
        vary_.setBounds(line.removeFromLeft(110));
        line.removeFromLeft(8);
        place(line, strength_, 70, 0);
    }
    area.removeFromBottom(8);

    {
        auto line = area.removeFromBottom(24);
        const int w = line.getWidth() / 5;
        for (auto* b : { &star_, &rename_, &delete_, &trash_, &reveal_ }) {
            b->setBounds(line.removeFromLeft(w).reduced(2, 0));
        }
    }
    area.removeFromBottom(4);
    takesLabel_.setBounds(area.removeFromTop(20));
    takes_.setBounds(area);
    noTakes_.setBounds(area.reduced(8));
}

// ------------------------------------------------------------------------------------------
int SidemanEditor::getNumRows() { return static_cast<int>(shownTakes_.size()); }

void SidemanEditor::paintListBoxItem(int row, juce::Graphics& g, int width, int height, bool selected) {
    if (row < 0 || row >= getNumRows()) return;
    const auto& take = shownTakes_[static_cast<size_t>(row)];
    if (selected) g.fillAll(getLookAndFeel().findColour(juce::TextEditor::highlightColourId));
    g.setColour(getLookAndFeel().findColour(juce::Label::textColourId));
    auto area = juce::Rectangle<int>(0, 0, width, height).reduced(6, 0);
    g.setColour(take.starred ? juce::Colours::gold : juce::Colours::grey);
    g.drawText(take.starred ? juce::String(juce::CharPointer_UTF8("\xe2\x98\x85")) : juce::String("-"),
               area.removeFromLeft(16), juce::Justification::centredLeft);
    g.setColour(getLookAndFeel().findColour(juce::Label::textColourId));
    g.drawText(juce::String(take.number), area.removeFromLeft(30), juce::Justification::centredLeft);
    const auto right = take.kind + "  seed " + juce::String(take.seed) + "  " + juce::String(take.steps) +
                       " steps  " + juce::String(take.bars) + " bars  " + shortTime(take.created);
    const int rightWidth = juce::jmin(area.getWidth() / 2, g.getCurrentFont().getStringWidth(right) + 8);
    g.setColour(juce::Colours::grey);
    g.drawText(right, area.removeFromRight(rightWidth), juce::Justification::centredRight, true);
    g.setColour(getLookAndFeel().findColour(juce::Label::textColourId));
    g.drawText(take.title(), area, juce::Justification::centredLeft, true);
}

void SidemanEditor::selectedRowsChanged(int lastRowSelected) {
    if (updatingList_) return;
    auto* parameter = processor_.parameters().getParameter(param::take);
    const int index = lastRowSelected < 0 ? 0 : lastRowSelected + 1;
    parameter->beginChangeGesture();
    parameter->setValueNotifyingHost(parameter->convertTo0to1(static_cast<float>(index)));
    parameter->endChangeGesture();
}

juce::var SidemanEditor::getDragSourceDescription(const juce::SparseSet<int>& rows) {
    if (rows.size() != 1 || rows[0] < 0 || rows[0] >= getNumRows()) return {};
    return juce::String(kDragPrefix) + shownTakes_[static_cast<size_t>(rows[0])].id;
}

bool SidemanEditor::shouldDropFilesWhenDraggedExternally(const juce::DragAndDropTarget::SourceDetails& details,
                                                         juce::StringArray& files, bool& canMoveFiles) {
    const auto description = details.description.toString();
    if (!description.startsWith(kDragPrefix)) return false;
    juce::String error;
    const auto file = processor_.controller().exportedTake(description.fromFirstOccurrenceOf(kDragPrefix, false, false), error);
    if (!file) return false;
    files.add(file->getFullPathName());
    canMoveFiles = false;  // the DAW copies or references it; the export stays in the session folder
    return true;
}

// ------------------------------------------------------------------------------------------
const TakeRecord* SidemanEditor::selectedTake() const {
    for (const auto& take : shownTakes_)
        if (take.id == shownSelection_) return &take;
    return nullptr;
}

// Rename in place: a text box over the selected row; Return or a click elsewhere keeps the
// name, Escape drops it (no modal dialog: DAWs host plugin windows in different ways).
void SidemanEditor::rename() {
    const auto* take = selectedTake();
    if (take == nullptr) return;
    const int row = static_cast<int>(take - shownTakes_.data());
    renaming_ = take->id;
    renameBox_.setBounds(getLocalArea(&takes_, takes_.getRowPosition(row, true)).withTrimmedLeft(50).reduced(0, 1));
    renameBox_.setText(take->name.isNotEmpty() ? take->name : take->title(), juce::dontSendNotification);
    renameBox_.setVisible(true);
    renameBox_.toFront(true);
    renameBox_.grabKeyboardFocus();
    renameBox_.selectAll();
}

void SidemanEditor::finishRename(bool keep) {
    if (renaming_.isEmpty()) return;
    const auto id = renaming_;
    renaming_.clear();
    renameBox_.setVisible(false);
    if (keep) processor_.controller().renameTake(id, renameBox_.getText());
}

void SidemanEditor::showTrash() {
    const auto trash = processor_.controller().session().trash;
    juce::PopupMenu menu;
    menu.addSectionHeader(trash.empty() ? "The trash is empty" : "Restore a deleted take");
    for (size_t i = trash.size(); i-- > 0;)
        menu.addItem(static_cast<int>(i) + 1, "Take " + juce::String(trash[i].number) + ": " + trash[i].title());
    juce::Component::SafePointer<SidemanEditor> self(this);
    menu.showMenuAsync(juce::PopupMenu::Options().withTargetComponent(&trash_), [self, trash](int chosen) {
        if (chosen > 0 && self != nullptr && static_cast<size_t>(chosen) <= trash.size())
            self->processor_.controller().restoreTake(trash[static_cast<size_t>(chosen) - 1].id);
    });
}

void SidemanEditor::reveal() {
    const auto* take = selectedTake();
    if (take == nullptr) return;
    juce::String error;
    if (const auto file = processor_.controller().exportedTake(take->id, error))
        file->revealToUser();
    else
        status_.setText("Cannot write the take's file: " + error, juce::dontSendNotification);
}

void SidemanEditor::chooseStyle() {
    chooser_ = std::make_unique<juce::FileChooser>("Style reference (audio whose sound the take should have)",
                                                   juce::File(), "*.wav;*.aif;*.aiff;*.flac;*.mp3;*.ogg");
    juce::Component::SafePointer<SidemanEditor> self(this);
    chooser_->launchAsync(juce::FileBrowserComponent::openMode | juce::FileBrowserComponent::canSelectFiles,
                          [self](const juce::FileChooser& chooser) {
                              if (self == nullptr || chooser.getResult() == juce::File()) return;
                              // The Sideman server reads files only inside its cache folder: a copy goes there.
                              const auto source = chooser.getResult();
                              const auto folder = juce::File(self->processor_.controller().session().cacheFolder)
                                                      .getSiblingFile("styles");
                              const auto copy = folder.getChildFile(source.getFileName());
                              if (!folder.createDirectory() || (copy != source && !source.copyFileTo(copy))) {
                                  self->status_.setText("Cannot copy the style file into " + folder.getFullPathName(),
                                                        juce::dontSendNotification);
                                  return;
                              }
                              self->processor_.controller().setStyleFile(copy.getFullPathName());
                          });
}

// ------------------------------------------------------------------------------------------
void SidemanEditor::refreshModels(const SessionState& session) {
    const auto models = processor_.controller().models();
    if (models != shownModels_) {
        shownModels_ = models;
        model_.clear(juce::dontSendNotification);
        for (int i = 0; i < models.size(); ++i) model_.addItem(models[i], i + 1);
    }
    const auto wanted = session.model.isEmpty() ? juce::String(osc::kDefaultModel) : session.model;
    const int index = shownModels_.indexOf(wanted);
    if (index >= 0 && model_.getSelectedId() != index + 1) model_.setSelectedId(index + 1, juce::dontSendNotification);
}

void SidemanEditor::refreshProgress() {
    const auto p = processor_.controller().progress();
    progress_.setVisible(p.busy);
    if (!p.busy) return;
    progressValue_ = p.total > 0 ? p.fraction : -1.0;  // negative: JUCE's "working" animation
    progress_.setTextToDisplay(p.ahead > 0 ? "Waiting: " + juce::String(p.ahead) + " job" + (p.ahead == 1 ? "" : "s") +
                                                 " ahead in the Sideman server's queue"
                               : p.total > 0 ? "Step " + juce::String(p.step) + " of " + juce::String(p.total)
                                             : juce::String("Starting..."));
}

void SidemanEditor::timerCallback() {
    auto& controller = processor_.controller();
    const auto text = controller.status();
    const bool failed = controller.lastActivityFailed();
    if (status_.getText() != text || failed != shownFailure_) {
        // The link in the normal colour, the last activity in red when it failed.
        shownFailure_ = failed;
        const auto normal = getLookAndFeel().findColour(juce::Label::textColourId);
        status_.clear();
        status_.setColour(juce::TextEditor::textColourId, normal);
        status_.insertTextAtCaret(text.upToFirstOccurrenceOf("\n", true, false));
        status_.setColour(juce::TextEditor::textColourId, failed ? juce::Colour(0xffff6b6b) : normal);
        status_.insertTextAtCaret(text.fromFirstOccurrenceOf("\n", false, false));
    }
    refreshProgress();

    const auto session = controller.session();
    refreshModels(session);
    style_.setButtonText(session.styleFile.isEmpty() ? "Style file..." : juce::File(session.styleFile).getFileName());
    clearStyle_.setEnabled(session.styleFile.isNotEmpty());
    styleMix_.slider.setEnabled(session.styleFile.isNotEmpty());

    const bool hasSelection = session.indexOf(session.selectedTake) >= 0;
    for (auto* b : { &star_, &rename_, &delete_, &reveal_, &vary_, &inpaint_ }) b->setEnabled(hasSelection);
    trash_.setButtonText("Trash (" + juce::String(static_cast<int>(session.trash.size())) + ")");

    const bool changed = session.takes.size() != shownTakes_.size() || session.selectedTake != shownSelection_ ||
                         !std::equal(session.takes.begin(), session.takes.end(), shownTakes_.begin(),
                                     [](const TakeRecord& a, const TakeRecord& b) {
                                         return a.id == b.id && a.name == b.name && a.starred == b.starred;
                                     });
    if (!changed) return;
    shownTakes_ = session.takes;
    shownSelection_ = session.selectedTake;
    if (const auto* take = selectedTake()) star_.setButtonText(take->starred ? "Unstar" : "Star");
    noTakes_.setVisible(shownTakes_.empty());
    const juce::ScopedValueSetter<bool> guard(updatingList_, true);
    takes_.updateContent();
    const int selected = session.indexOf(session.selectedTake);
    if (selected >= 0)
        takes_.selectRow(selected, false, true);
    else
        takes_.deselectAllRows();
    takes_.repaint();
}

}  // namespace sideman::plugin
